"""A backend's stream relayed to the client, and accounted for when it ends, however it ends.

One generator serves every streaming endpoint: the endpoint's `StreamTranslator`
(`proxy.answers`) turns the backend's bytes into the client's events; this module owns what is
common: the lease's progress and outcome,
the limit slot, the error event for a stream that broke off, and the exchange's accounting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable

from warmgate.proxy.answers.shaping import StreamTranslator
from warmgate.proxy.errors import BackendTimeout, StreamInterrupted
from warmgate.proxy.limits.admission import Admission
from warmgate.proxy.pipeline.exchange import Exchange
from warmgate.proxy.routing.backend import Outcome
from warmgate.proxy.routing.lease import Lease
from warmgate.proxy.upstream.client import UpstreamResponse

# Enum members read per request, looked up once here: on Python 3.11 each `Enum.MEMBER`
# read goes through the enum metaclass's __getattr__ hook, a slow generic lookup.
_OK, _SERVER_ERROR, _STREAM_CUT, _CANCELLED = (
    Outcome.OK,
    Outcome.SERVER_ERROR,
    Outcome.STREAM_CUT,
    Outcome.CANCELLED,
)


async def relay_stream(
    answer: UpstreamResponse,
    lease: Lease,
    admission: Admission,
    exchange: Exchange,
    translator: StreamTranslator,
    *,
    close: Callable[[Exchange], None],
    settle: Callable[[], Awaitable[None]] | None = None,
) -> AsyncGenerator[bytes, None]:
    """The client's stream. Its `finally` releases the backend and the limit slot, and
    accounts the stream and `close`s the exchange if that has not happened yet, whether the
    stream ended, broke off, or the client went away.

    The exchange is closed (its ledger row recorded, and so spooled) before the bytes that end
    the answer are yielded, the final event or the error event of a stream that broke off: a
    client that has its whole answer has its row, even if the process is killed at once.
    `settle` runs just before, for what must be done before the client can act on the answer
    (a stored response's binding written to the shared store)."""
    outcome = _OK
    released = False
    accounted = False

    def account(result: Outcome) -> None:
        nonlocal accounted
        if not accounted:
            accounted = True
            account_stream(translator, exchange, result)
            close(exchange)

    try:
        try:
            async for chunk in answer.chunks():
                lease.progress()
                out = translator.feed(chunk)
                if out:
                    exchange.mark_first_byte()
                if translator.complete and not accounted:  # `out` ends the answer
                    if settle is not None:
                        await settle()
                    account(_SERVER_ERROR if translator.failed else _OK)
                if out:
                    yield out
            released = True
            answer.release()
            if translator.failed:
                outcome = _SERVER_ERROR
            elif not translator.complete:
                outcome = _STREAM_CUT
                end = translator.fail(StreamInterrupted("The model backend's stream broke off."))
                account(outcome)
                yield end
        except (StreamInterrupted, BackendTimeout) as error:
            outcome = _STREAM_CUT
            end = translator.fail(error)
            account(outcome)
            yield end
    except (asyncio.CancelledError, GeneratorExit):
        outcome = _CANCELLED
        exchange.cancelled = True
        raise
    finally:
        if not released:
            answer.abort()
        lease.finish(outcome)
        admission.release()
        account(outcome)


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
    if translator.failed or outcome is _STREAM_CUT:
        exchange.error_code = StreamInterrupted.code
    else:
        exchange.completed = translator.complete and outcome is _OK
