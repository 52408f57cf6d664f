"""POST /abort_request, GET|POST /flush_cache, POST /pause_generation, /continue_generation."""

from __future__ import annotations

from aiohttp import web

from warmgate.backends.sim.errors import SimError
from warmgate.backends.sim.routes import intake
from warmgate.backends.sim.wire import AbortRequest, abort_decoder

FLUSHED = (
    "Cache flushed.\nPlease check backend logs for more details. (When there are running or "
    "waiting requests, the operation will not be performed.)\n"
)


async def abort_request(request: web.Request) -> web.Response:
    """Abort by rid, or everything with abort_all; the request finishes with "abort"."""
    replica = intake.replica_of(request)
    try:
        body = await intake.read_body(request, replica, require_json=False)
        abort: AbortRequest = intake.decode(abort_decoder, body or b"{}", "AbortReq")
    except SimError as error:
        return intake.error_response(error)
    replica.scheduler.abort_rid(abort.rid, abort.abort_all)
    return web.Response(status=200)


async def flush_cache(request: web.Request) -> web.Response:
    scheduler = intake.replica_of(request).scheduler
    if scheduler.flush_cache():
        return web.Response(text=FLUSHED)
    return web.Response(text="Flush cache failed.\n", status=400)


async def pause_generation(request: web.Request) -> web.Response:
    """Hold the scheduler: queued and running requests wait; /ready answers 503."""
    intake.replica_of(request).scheduler.set_paused(True)
    return intake.json_response(b'{"message":"Generation paused successfully.","status":"ok"}')


async def continue_generation(request: web.Request) -> web.Response:
    intake.replica_of(request).scheduler.set_paused(False)
    return intake.json_response(b'{"message":"Generation continued successfully.","status":"ok"}')
