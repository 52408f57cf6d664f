"""GET /health, /health_generate (a one-token generation through the scheduler), /ready, /ping."""

from __future__ import annotations

import asyncio
import math
import uuid

from aiohttp import web

from warmgate.backends.sim.config import HEALTH_CHECK_TIMEOUT_S
from warmgate.backends.sim.generation import Generation, QueueFullError
from warmgate.backends.sim.routes import intake

HEALTH_CHECK_RID_PREFIX = "HEALTH_CHECK"
PROBE_TICK_S = 1.0  # http_server.health_generate polls once a second


async def health_generate(request: web.Request) -> web.Response:
    """503 while starting, draining or stuck; else 200 once the engine sent any request an
    output after the probe arrived (SGLang compares the tokenizer manager's
    last_receive_tstamp with the probe's start, polling once a second): a probe queued behind
    busy decodes passes on their tokens, while one behind a long prefill waits it out."""
    replica = intake.replica_of(request)
    if replica.draining or replica.starting or replica.faults.unhealthy:
        return web.Response(status=503)
    scheduler = replica.scheduler
    probe = Generation(
        f"{HEALTH_CHECK_RID_PREFIX}_{uuid.uuid4().hex}",
        prompt_tokens=1,
        block_hashes=[],
        output_tokens=1,
        stop_reason="length",
        log_metrics=False,
    )
    scale = replica.config.time_scale
    seen = scheduler.outputs
    tic = scheduler.now()
    try:
        scheduler.submit(probe)
    except QueueFullError:
        return web.Response(status=200)  # the abort is itself a scheduler output
    try:
        timeout = HEALTH_CHECK_TIMEOUT_S * (scale if scale > 0 else 1.0)  # a stuck engine
        await asyncio.wait_for(scheduler.wait_until(lambda s: s.outputs > seen), timeout)
        if scale > 0:  # answered on the first once-a-second poll that saw the output
            waited = scheduler.now() - tic
            ticks = max(1.0, math.ceil(waited / PROBE_TICK_S))
            await asyncio.sleep(max(0.0, (ticks * PROBE_TICK_S - waited) * scale))
    except TimeoutError:
        return web.Response(status=503)
    finally:
        scheduler.abort(probe)
    return web.Response(status=200)


async def ready(request: web.Request) -> web.Response:
    return web.Response(status=200 if intake.replica_of(request).ready() else 503)


async def ping(request: web.Request) -> web.Response:
    return web.Response(status=200 if intake.replica_of(request).healthy_flag() else 503)
