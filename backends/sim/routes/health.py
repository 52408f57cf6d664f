"""GET /health, /health_generate (a one-token generation through the scheduler), /ready, /ping."""

from __future__ import annotations

import asyncio
import uuid

from aiohttp import web

from backends.sim.config import HEALTH_CHECK_TIMEOUT_S
from backends.sim.generation import Generation, QueueFullError
from backends.sim.routes import intake

HEALTH_CHECK_RID_PREFIX = "HEALTH_CHECK"
PROBE_TICK_S = 1.0  # http_server.health_generate polls once a second


async def health_generate(request: web.Request) -> web.Response:
    """503 while starting, draining or stuck; else 200 once the probe got a scheduler output."""
    replica = intake.replica_of(request)
    if replica.draining or replica.starting or replica.faults.unhealthy:
        return web.Response(status=503)
    probe = Generation(
        f"{HEALTH_CHECK_RID_PREFIX}_{uuid.uuid4().hex}",
        prompt_tokens=1,
        block_hashes=[],
        output_tokens=1,
        stop_reason="length",
        log_metrics=False,
    )
    scale = replica.config.time_scale
    try:
        replica.scheduler.submit(probe)
    except QueueFullError:
        return web.Response(status=200)  # the abort is itself a scheduler output
    try:
        timeout = HEALTH_CHECK_TIMEOUT_S * (scale if scale > 0 else 1.0)  # a stuck engine
        await asyncio.wait_for(probe.completed(), timeout)
        if scale > 0:
            await asyncio.sleep(
                max(0.0, (PROBE_TICK_S - probe.finished_at + probe.arrived_at) * scale)
            )
    except TimeoutError:
        return web.Response(status=503)
    finally:
        replica.scheduler.abort(probe)
    return web.Response(status=200)


async def ready(request: web.Request) -> web.Response:
    return web.Response(status=200 if intake.replica_of(request).ready() else 503)


async def ping(request: web.Request) -> web.Response:
    return web.Response(status=200 if intake.replica_of(request).healthy_flag() else 503)
