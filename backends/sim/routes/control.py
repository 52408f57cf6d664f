"""The simulator's own control surface (not SGLang's): /_sim/faults and /_sim/stats."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from warmgate.backends.sim.errors import SimError
from warmgate.backends.sim.faults import Faults
from warmgate.backends.sim.routes import intake
from warmgate.backends.sim.routes.info import load_snapshot
from warmgate.backends.sim.wire import any_decoder, encode

FAULT_FIELDS = frozenset(Faults.__struct_fields__)


async def get_faults(request: web.Request) -> web.Response:
    return intake.json_response(encode(intake.replica_of(request).faults))


async def set_faults(request: web.Request) -> web.Response:
    """Replace the named fields: `{"fail_rate": 0.5, "fail_status": 503}`; 400 on others."""
    replica = intake.replica_of(request)
    try:
        changes = any_decoder.decode(await request.read())
        if not isinstance(changes, dict) or not set(changes) <= FAULT_FIELDS:
            raise SimError(f"fault fields are {sorted(FAULT_FIELDS)}")
        checked = msgspec.convert({**msgspec.to_builtins(replica.faults), **changes}, Faults)
        faults = await replica.set_faults(
            keep_connection=request.transport, **msgspec.structs.asdict(checked)
        )
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        return intake.error_response(SimError(str(exc)))
    except SimError as error:
        return intake.error_response(error)
    return intake.json_response(encode(faults))


async def stats(request: web.Request) -> web.Response:
    replica = intake.replica_of(request)
    telemetry = replica.telemetry
    last: Any = telemetry.last_request_body
    if isinstance(last, bytes):
        try:
            last = any_decoder.decode(last) if last else None
        except msgspec.DecodeError:
            last = last.decode(errors="replace")
    body = {
        "requests_received": telemetry.requests_received,
        "requests_completed": telemetry.requests_completed,
        "requests_aborted": telemetry.aborted,
        "requests_rejected_queue_full": telemetry.rejected_queue_full,
        "faults_injected": telemetry.faults_injected,
        "prompt_tokens": telemetry.prompt_tokens,
        "cached_tokens": telemetry.cached_tokens,
        "generation_tokens": telemetry.generation_tokens,
        "prefix_cache_tokens": replica.scheduler.cache.tokens,
        "sim_time_s": replica.scheduler.now(),
        "load": load_snapshot(replica),
        "last_request_path": telemetry.last_request_path,
        "last_request_body": last,
        "recent_requests": [record.to_dict() for record in telemetry.recent],
    }
    return intake.json_response(encode(body))
