"""A backend's stream relayed to the client, and accounted for when it ends, however it ends.

One generator serves every streaming endpoint: the endpoint's `StreamTranslator`
(`proxy.answers`) turns the backend's bytes into the client's events; this module owns what is
common: the lease's progress and outcome,
the limit slot, the error event for a stream that broke off, and the exchange's accounting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable

from warmgate.proxy.answers.shaping import StreamTranslator
from warmgate.proxy.errors import BackendTimeout, StreamInterrupted
from warmgate.proxy.limits.admission import Admission
from warmgate.proxy.pipeline.exchange import Exchange
from warmgate.proxy.routing.backend import Outcome
from warmgate.proxy.routing.lease import Lease
from warmgate.proxy.upstream.client import UpstreamResponse


async def relay_stream(
    answer: UpstreamResponse,
    lease: Lease,
    admission: Admission,
    exchange: Exchange,
    translator: StreamTranslator,
    *,
    close: Callable[[Exchange], None],
) -> AsyncGenerator[bytes, None]:
    """The client's stream. Its `finally` releases the backend and the limit slot, accounts
    the stream and `close`s the exchange, whether the stream ended, broke off, or the client
    went away."""
    outcome = Outcome.OK
    released = False
    try:
        try:
            async for chunk in answer.chunks():
                lease.progress()
                out = translator.feed(chunk)
                if out:
                    exchange.mark_first_byte()
                    yield out
            released = True
            answer.release()
            if translator.failed:
                outcome = Outcome.SERVER_ERROR
            elif not translator.complete:
                outcome = Outcome.STREAM_CUT
                yield translator.fail(StreamInterrupted("The model backend's stream broke off."))
        except (StreamInterrupted, BackendTimeout) as error:
            outcome = Outcome.STREAM_CUT
            yield translator.fail(error)
    except (asyncio.CancelledError, GeneratorExit):
        outcome = Outcome.CANCELLED
        exchange.cancelled = True
        raise
    finally:
        if not released:
            answer.abort()
        lease.finish(outcome)
        admission.release()
        account_stream(translator, exchange, outcome)
        close(exchange)


def account_stream(translator: StreamTranslator, exchange: Exchange, outcome: Outcome) -> None:
    """The stream's tokens and completion, as the ledger bills them."""
    exchange.delivered_tokens = translator.token_chunks
    usage = translator.usage
    if usage is not None:
        exchange.prompt_tokens = usage.prompt_tokens
        exchange.cached_tokens = usage.cached_tokens
        exchange.completion_tokens = usage.completion_tokens
    elif translator.token_chunks:
        # no usage chunk (the stream broke off): what reached the client, a chunk a token
        exchange.completion_tokens = translator.token_chunks
    if translator.failed or outcome is Outcome.STREAM_CUT:
        exchange.error_code = StreamInterrupted.code
    else:
        exchange.completed = translator.complete and outcome is Outcome.OK
