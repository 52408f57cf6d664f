"""The Responses API as SGLang 0.5.x serves it (serving_responses.py, non-harmony path).

POST /v1/responses renders its input (instructions, the continued conversation, the input
items, the tools) through the chat template and runs it in the scheduler like a chat request:
plain text, JSON under `text.format`, or function calls under `tools`. The token limit ends it
`incomplete`. A background response is stored `queued`, turns `in_progress` when its task
starts and `completed` (or `incomplete`) when it ends; the replica's store owns those tasks.
Stored responses live in the replica's memory, as in SGLang: GET /v1/responses/{id} retrieves
one, and `previous_response_id` must name one this replica created (`resp_...`).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
from aiohttp import web

from warmgate.backends.sim import choices
from warmgate.backends.sim.choices import Choice
from warmgate.backends.sim.constrained.constraint import Constraint, ConstraintError, select
from warmgate.backends.sim.errors import SimError
from warmgate.backends.sim.generation import QueueFullError
from warmgate.backends.sim.replica import Replica
from warmgate.backends.sim.response_objects import (
    ResponsesRequest,
    conversation,
    final_response,
    outputs_as_messages,
    response_document,
)
from warmgate.backends.sim.response_store import ResponseStore
from warmgate.backends.sim.routes import intake
from warmgate.backends.sim.routes.chat import plan
from warmgate.backends.sim.routes.responses_stream import stream_response
from warmgate.backends.sim.wire import ChatCompletionRequest, ChatMessage, encode

CONSTRAINT_CONFLICT = (
    "Cannot combine tool calls with constrained decoding (text.format / regex / ebnf / "
    "structural_tag / json_schema). Remove one."
)


RESPONSES = web.AppKey("responses", ResponseStore)
_decoder = msgspec.json.Decoder(ResponsesRequest)


def nested_error(message: str, status: int, param: str | None = None) -> web.Response:
    """SGLang's error envelope on /v1/responses: nested, with the HTTP status as `code`."""
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": status}
    return intake.json_response(encode({"error": error}), status)


def _invalid_id(response_id: str) -> web.Response:
    message = f"Invalid 'response_id': '{response_id}'. Expected an ID that begins with 'resp'."
    return nested_error(message, 400, "response_id")


def _not_found(response_id: str) -> web.Response:
    return nested_error(f"Response with id '{response_id}' not found.", 404, "response_id")


def _refusal(asked: ResponsesRequest, store: ResponseStore) -> web.Response | None:
    """create_responses' checks before anything is generated, in its order."""
    if asked.background and not asked.store:
        return nested_error("background=true requires store=true.", 400, "store")
    kinds = [tool.type for tool in asked.tools]
    if asked.tool_choice == "required" and not {"function", "custom"} & set(kinds):
        return nested_error(
            'tool_choice="required" requires at least one tool with type="function" or '
            'type="custom"; other built-in tool types cannot be forced.',
            400,
        )
    choice = asked.effective_tool_choice()
    if isinstance(choice, dict) and not any(
        tool.type in ("function", "custom") and tool.name == choice["name"] for tool in asked.tools
    ):
        return nested_error(f"Tool {choice['name']!r} is not declared in tools", 400, "tool_choice")
    previous = asked.previous_response_id
    if previous is not None:
        if not previous.startswith("resp_"):
            return _invalid_id(previous)
        if store.get(previous) is None:
            return _not_found(previous)
    return None


def _constraint(asked: ResponsesRequest) -> Constraint | None:
    schema = asked.output_schema()
    if schema is None:
        return None
    forced = asked.effective_tool_choice() != "auto" and asked.effective_tool_choice() != "none"
    if forced and asked.function_tools():
        raise SimError(CONSTRAINT_CONFLICT)
    return select(schema, None, None)


async def create(request: web.Request) -> web.StreamResponse:  # noqa: PLR0911 - one per way out
    replica = intake.replica_of(request)
    store = request.app[RESPONSES]
    try:
        body = await intake.read_body(request, replica)
        asked: ResponsesRequest = intake.decode(_decoder, body, "ResponsesRequest")
        if asked.model is not None:
            intake.check_model(asked.model, replica.config)
        await intake.pass_faults(replica)
    except SimError as error:
        return intake.error_response(error)
    refusal = _refusal(asked, store)
    if refusal is not None:
        return refusal
    history = store.histories.get(asked.previous_response_id or "", [])
    messages = conversation(asked, history)
    response_id = f"resp_{uuid.uuid4().hex}"
    try:
        constraint = _constraint(asked)
        chat = ChatCompletionRequest(
            messages=messages,
            model=asked.model or replica.config.served_name,
            max_tokens=asked.max_new_tokens(),
            tools=asked.function_tools() or None,
            tool_choice=asked.chat_tool_choice() if asked.function_tools() else "none",
            stop=asked.stop,
        )
        _, (choice,) = plan(chat, replica, constraint, rid=response_id)
    except (SimError, ConstraintError) as error:
        return nested_error(str(error), 400)
    if asked.stream:
        return await stream_response(
            request, replica, asked, choice, store=store, messages=messages
        )
    if asked.background:
        queued = response_document(asked, response_id, "queued", [], None)
        store.put(queued, messages)
        store.background.add(response_id)
        task = asyncio.create_task(_run_in_background(replica, asked, choice, store, messages))
        store.tasks[response_id] = task
        task.add_done_callback(lambda _: store.tasks.pop(response_id, None))
        return intake.json_response(encode(queued))
    try:
        final = await _run(replica, asked, choice)
    except QueueFullError as full:
        return nested_error(str(full), 503)
    if asked.store:
        store.put(final, messages + outputs_as_messages(final["output"]))
    return intake.json_response(encode(final))


async def _run(replica: Replica, asked: ResponsesRequest, choice: Choice) -> dict[str, Any]:
    """Generate the answer in the scheduler and build the response that ends it."""
    replica.telemetry.requests_received += 1
    choices.submit(replica, [choice])  # QueueFullError: the caller answers 503
    try:
        await choice.generation.completed()
    finally:
        choices.abort(replica, [choice])
    return final_response(asked, choice)


async def _run_in_background(
    replica: Replica,
    asked: ResponsesRequest,
    choice: Choice,
    store: ResponseStore,
    messages: list[ChatMessage],
) -> None:
    response_id = choice.generation.rid
    stored = store.get(response_id)
    if stored is None or stored["status"] != "queued":
        return
    stored["status"] = "in_progress"
    store.running[response_id] = choice
    try:
        final = await _run(replica, asked, choice)
    except QueueFullError:
        stored["status"] = "failed"
        return
    finally:
        store.running.pop(response_id, None)
    if stored["status"] != "cancelled":
        final["created_at"] = stored["created_at"]
        store.put(final, messages + outputs_as_messages(final["output"]))


async def retrieve(request: web.Request) -> web.Response:
    response_id = request.match_info["response_id"]
    if not response_id.startswith("resp_"):
        return _invalid_id(response_id)
    stored = request.app[RESPONSES].get(response_id)
    if stored is None:
        return _not_found(response_id)
    return intake.json_response(encode(stored))


async def cancel(request: web.Request) -> web.Response:
    """A queued or running background response is cancelled; one already finished is returned
    as it is (SGLang). A synchronous one is refused, as OpenAI words it."""
    response_id = request.match_info["response_id"]
    if not response_id.startswith("resp_"):
        return _invalid_id(response_id)
    store = request.app[RESPONSES]
    stored = store.get(response_id)
    if stored is None:
        return _not_found(response_id)
    if stored["status"] in ("queued", "in_progress"):
        stored["status"] = "cancelled"
        running = store.running.get(response_id)
        if running is not None:
            intake.replica_of(request).scheduler.abort(running.generation)
        task = store.tasks.get(response_id)
        if task is not None:
            task.cancel()
    elif response_id not in store.background:
        return nested_error("Cannot cancel a synchronous response.", 400, "response_id")
    return intake.json_response(encode(stored))
