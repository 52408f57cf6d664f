"""The Responses API as SGLang 0.5.23 serves it: tools, text.format, incomplete on the token
limit, background responses queued -> in_progress -> completed, input tokens counted through
the chat template, and a malformed previous_response_id refused with a 400."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from warmgate.backends.sim import SimCluster

pytestmark = pytest.mark.anyio

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
}
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def check(document: dict[str, Any], sglang: Any) -> None:
    """SGLang's ResponsesResponse reads it, and so does the SDK's Response."""
    sglang.ResponsesResponse.model_validate(document)
    Response.model_validate(document)


async def test_the_token_limit_ends_a_response_incomplete(
    http: httpx.AsyncClient, sglang: Any
) -> None:
    body = {"model": "demo", "input": "Tell me a long story", "max_output_tokens": 7}
    document = (await http.post("/v1/responses", json=body)).json()
    check(document, sglang)
    assert document["status"] == "incomplete"
    assert document["incomplete_details"] == {"reason": "max_output_tokens"}
    # ResponsesRequest.to_sampling_params keeps two tokens of headroom for BOS/EOS
    sampling = sglang.ResponsesRequest.model_validate(body).to_sampling_params(None, {})
    assert document["usage"]["output_tokens"] == sampling["max_new_tokens"] == 5


async def test_input_tokens_are_counted_through_the_chat_template(
    http: httpx.AsyncClient,
) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    chat = {"model": "demo", "messages": messages, "max_tokens": 2}
    prompt_tokens = (await http.post("/v1/chat/completions", json=chat)).json()["usage"]
    body = {"model": "demo", "instructions": "Be brief.", "input": "Hi", "max_output_tokens": 4}
    usage = (await http.post("/v1/responses", json=body)).json()["usage"]
    assert usage["input_tokens"] == prompt_tokens["prompt_tokens"]
    assert usage["input_tokens"] > len(["Be", "brief.", "Hi"])  # the template's own tokens


async def test_text_format_holds_the_output_to_the_schema(
    http: httpx.AsyncClient, sglang: Any
) -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "year": {"type": "integer", "minimum": 1900}},
        "required": ["title", "year"],
    }
    text = {"format": {"type": "json_schema", "name": "film", "schema": schema, "strict": True}}
    body = {"model": "demo", "input": "A film", "text": text}
    document = (await http.post("/v1/responses", json=body)).json()
    check(document, sglang)
    assert document["text"] == text  # request.text dumped without nulls
    output = document["output"][0]["content"][0]["text"]
    jsonschema.validate(json.loads(output), schema)


async def test_tools_are_called_with_arguments_that_fit_their_parameters(
    http: httpx.AsyncClient, sglang: Any
) -> None:
    for choice in ("required", {"type": "function", "name": "get_weather"}):
        body = {"model": "demo", "input": "Weather in Oslo?", "tools": [WEATHER],
                "tool_choice": choice}  # fmt: skip
        document = (await http.post("/v1/responses", json=body)).json()
        check(document, sglang)
        (call,) = document["output"]
        assert (call["type"], call["name"], call["status"]) == (
            "function_call", "get_weather", "completed")  # fmt: skip
        jsonschema.validate(json.loads(call["arguments"]), WEATHER["parameters"])
    streamed = await http.post("/v1/responses", json={**body, "stream": True})
    events = [json.loads(line.split("data: ", 1)[1]) for line in
              streamed.text.split("\n\n") if line]  # fmt: skip
    for event in events:
        EVENTS.validate_python(event)
        if event["type"] in ("response.created", "response.completed"):
            sglang.ResponsesLifecycleEvent.model_validate(event)
    deltas = "".join(e["delta"] for e in events if e["type"].endswith("arguments.delta"))
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert deltas == done["arguments"]
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][0]["arguments"] == done["arguments"]


async def test_a_stream_hitting_the_limit_ends_with_response_incomplete(
    http: httpx.AsyncClient,
) -> None:
    body = {"model": "demo", "input": "Go on", "max_output_tokens": 6, "stream": True}
    streamed = await http.post("/v1/responses", json=body)
    last = json.loads(streamed.text.strip().split("\n\n")[-1].split("data: ", 1)[1])
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


async def test_tools_refused_as_sglang_refuses_them(http: httpx.AsyncClient) -> None:
    unknown = {"model": "demo", "input": "x", "tools": [WEATHER],
               "tool_choice": {"type": "function", "name": "get_time"}}  # fmt: skip
    reply = await http.post("/v1/responses", json=unknown)
    assert reply.status_code == 400
    assert reply.json()["error"] == {"message": "Tool 'get_time' is not declared in tools",
        "type": "invalid_request_error", "param": "tool_choice", "code": 400}  # fmt: skip
    schema_too = {"model": "demo", "input": "x", "tools": [WEATHER], "tool_choice": "required",
                  "text": {"format": {"type": "json_object"}}}  # fmt: skip
    reply = await http.post("/v1/responses", json=schema_too)
    assert reply.status_code == 400
    assert reply.json()["error"]["message"].startswith("Cannot combine tool calls")


async def test_background_responses_are_queued_then_in_progress_then_completed(
    http: httpx.AsyncClient, cluster: SimCluster, sglang: Any
) -> None:
    await http.post("/pause_generation")  # holds the engine: the response stays in progress
    try:
        body = {"model": "demo", "input": "Slow job", "background": True, "max_output_tokens": 40}
        created = (await http.post("/v1/responses", json=body)).json()
        check(created, sglang)
        assert (created["status"], created["output"], created["usage"]) == ("queued", [], None)
        await cluster.replicas[0].scheduler.wait_until(lambda scheduler: scheduler.busy)
        running = (await http.get(f"/v1/responses/{created['id']}")).json()
        assert running["status"] == "in_progress"
    finally:
        await http.post("/continue_generation")
    await cluster.replicas[0].scheduler.wait_until(lambda scheduler: not scheduler.busy)
    for _ in range(100):  # the task stores the result once it runs again
        done = (await http.get(f"/v1/responses/{created['id']}")).json()
        if done["status"] not in ("queued", "in_progress"):
            break
    check(done, sglang)
    assert done["status"] in ("completed", "incomplete")
    assert done["output"]
    assert done["created_at"] == created["created_at"]


async def test_a_background_response_needs_store(http: httpx.AsyncClient) -> None:
    body = {"model": "demo", "input": "x", "background": True, "store": False}
    reply = await http.post("/v1/responses", json=body)
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "store"


@pytest.mark.parametrize("bad_id", ["bad", "msg_123", "response_1"])
async def test_a_malformed_response_id_is_a_400_naming_the_field(
    http: httpx.AsyncClient, bad_id: str
) -> None:
    expected = {
        "message": f"Invalid 'response_id': '{bad_id}'. Expected an ID that begins with 'resp'.",
        "type": "invalid_request_error",
        "param": "response_id",
        "code": 400,
    }
    reply = await http.post(
        "/v1/responses", json={"model": "demo", "input": "x", "previous_response_id": bad_id}
    )
    assert (reply.status_code, reply.json()) == (400, {"error": expected})
    retrieved = await http.get(f"/v1/responses/{bad_id}")
    assert (retrieved.status_code, retrieved.json()) == (400, {"error": expected})
    unknown = await http.post(
        "/v1/responses", json={"model": "demo", "input": "x", "previous_response_id": "resp_0"}
    )
    assert unknown.status_code == 404


async def test_a_continued_response_renders_the_earlier_turns(http: httpx.AsyncClient) -> None:
    first = (await http.post("/v1/responses", json={"model": "demo", "input": "One"})).json()
    follow = {"model": "demo", "input": "Two", "previous_response_id": first["id"]}
    second = (await http.post("/v1/responses", json=follow)).json()
    fresh = (await http.post("/v1/responses", json={"model": "demo", "input": "Two"})).json()
    assert second["usage"]["input_tokens"] > fresh["usage"]["input_tokens"]
    assert second["previous_response_id"] == first["id"]
