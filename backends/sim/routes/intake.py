"""The checks every generation route makes before a request reaches the scheduler."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from warmgate.backends.sim.config import DEFAULT_MAX_NEW_TOKENS, SimConfig
from warmgate.backends.sim.errors import SimError
from warmgate.backends.sim.replica import Replica
from warmgate.backends.sim.validation import body_error

REPLICA = web.AppKey("replica", Replica)
JSON = "application/json"


def replica_of(request: web.Request) -> Replica:
    return request.app[REPLICA]


def json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON)


def error_response(error: SimError) -> web.Response:
    return json_response(error.body(), error.status)


async def read_body(request: web.Request, replica: Replica, require_json: bool = True) -> bytes:
    """The raw body; 400 unless it is `application/json` (SGLang's validate_json_request)."""
    body = await request.read()
    replica.observe(request.path, body)
    if require_json and request.content_type != JSON:
        # http_server.validate_json_request raises RequestValidationError with this error.
        error = {
            "loc": ["header", "content-type"],
            "msg": "Unsupported Media Type: Only 'application/json' is allowed",
            "type": "value_error",
        }
        raise SimError(f"1 validation error:\n  {error} {[error]}", 400, "Bad Request")
    return body


def decode(decoder: msgspec.json.Decoder[Any], body: bytes, model: str) -> Any:
    """The body as `model` (SGLang's pydantic model name, for the reader); 400 if refused."""
    try:
        return decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise body_error(body, exc) from None


def check_model(model: str, config: SimConfig) -> None:
    """`base:adapter` asks for a LoRA adapter, which the simulator (like SGLang without
    --enable-lora) does not have (serving_base._parse_model_parameter)."""
    if ":" not in model or model == config.served_name:
        return
    if model.startswith(f"{config.served_name}:"):
        adapter = model[len(config.served_name) + 1 :].strip()
    else:
        adapter = model.split(":", 1)[1].strip()
    if adapter:
        raise SimError(
            f"LoRA adapter '{adapter}' was requested, but LoRA is not enabled. Please launch the "
            "server with --enable-lora flag and preload adapters using --lora-paths or "
            "/load_lora_adapter endpoint."
        )


def max_new_tokens(requested: int | None, prompt_tokens: int, config: SimConfig) -> int:
    """Context-length checks of TokenizerManager._validate_one_request, same messages."""
    context = config.context_length
    if prompt_tokens >= context:
        raise SimError(
            f"The input ({prompt_tokens} tokens) is longer than the model's context length "
            f"({context} tokens)."
        )
    wanted = DEFAULT_MAX_NEW_TOKENS if requested is None else requested
    if requested is not None and wanted + prompt_tokens > context:
        if config.allow_auto_truncate:
            return max(0, context - prompt_tokens)
        raise SimError(
            "Requested token count exceeds the model's maximum context length of "
            f"{context} tokens. You requested a total of {wanted + prompt_tokens} tokens: "
            f"{prompt_tokens} tokens from the input messages and {wanted} tokens for the "
            "completion. Please reduce the number of tokens in the input messages or the "
            "completion to fit within the limit."
        )
    return min(wanted, context - prompt_tokens)


async def pass_faults(replica: Replica) -> None:
    """Hang before the first byte, or fail this request, as the replica's faults say."""
    await replica.hold_if_hung()
    faults = replica.faults
    if replica.dice.fails(faults):
        replica.telemetry.faults_injected += 1
        if faults.fail_status == 500:
            raise SimError("Internal server error: simulated fault", 500, "InternalServerError")
        raise SimError(
            "Simulated fault: service unavailable", faults.fail_status, str(faults.fail_status)
        )
