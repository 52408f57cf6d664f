"""The Responses API through `warmgate serve`: create, stream, retrieve, continue, cancel."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.support.served import ServedGateway
from tests.surface.conftest import received, set_faults, sim_stats


def test_a_response_is_created_with_output_and_usage(client: OpenAI) -> None:
    response = client.responses.create(model="demo", input="Write a haiku", max_output_tokens=24)
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.output_text
    assert response.usage is not None
    assert response.usage.output_tokens > 0


def test_a_response_stream_keeps_its_event_lines_and_ends_completed(
    client: OpenAI, served: ServedGateway
) -> None:
    stream = client.responses.create(model="demo", input="Tell me", stream=True)
    events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    numbers = [event.sequence_number for event in events]
    assert numbers == sorted(numbers)
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.output_text == deltas
    assert final.response.usage is not None


def test_a_streamed_response_is_accounted_with_its_usage(
    served: ServedGateway, http: httpx.Client
) -> None:
    with http.stream(
        "POST", "responses", json={"model": "demo", "input": "count", "stream": True}
    ) as response:
        raw = b"".join(response.iter_raw())
        request_id = response.headers["x-request-id"]
    assert raw.startswith(b"event: response.created\ndata: ")
    assert b"data: [DONE]" not in raw
    record = served.request_log(request_id)
    assert (record["endpoint"], record["stream"], record["billed"]) == ("responses", True, True)
    assert record["completion_tokens"] > 0


def test_a_stored_response_is_retrieved_from_the_replica_that_holds_it(client: OpenAI) -> None:
    created = client.responses.create(model="demo", input="remember this")
    # Round robin over two replicas: only binding the id to its replica finds it every time.
    for _ in range(4):
        again = client.responses.retrieve(created.id)
        assert again.id == created.id
        assert again.output_text == created.output_text


def test_previous_response_id_continues_on_the_same_replica(client: OpenAI, sim: Any) -> None:
    first = client.responses.create(model="demo", input="first turn")
    for turn in range(4):
        follow = client.responses.create(
            model="demo", input=f"turn {turn}", previous_response_id=first.id
        )
        assert follow.status == "completed"
        assert follow.previous_response_id == first.id


def test_another_key_cannot_see_a_response(client: OpenAI, other_client: OpenAI) -> None:
    created = client.responses.create(model="demo", input="mine")
    with pytest.raises(openai.NotFoundError) as caught:
        other_client.responses.retrieve(created.id)
    assert caught.value.param == "response_id"
    with pytest.raises(openai.NotFoundError):
        other_client.responses.create(model="demo", input="x", previous_response_id=created.id)


def test_an_unknown_response_id_is_a_404(client: OpenAI, sim: Any) -> None:
    before = received(sim)
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.retrieve("resp_0000")
    assert caught.value.param == "response_id"
    with pytest.raises(openai.NotFoundError) as continued:
        client.responses.create(model="demo", input="x", previous_response_id="resp_0000")
    assert continued.value.param == "previous_response_id"
    assert received(sim) == before


def test_a_malformed_response_id_is_a_400_naming_the_field_before_any_backend(
    client: OpenAI, sim: Any
) -> None:
    before = received(sim)
    with pytest.raises(openai.BadRequestError) as continued:
        client.responses.create(model="demo", input="x", previous_response_id="bad")
    assert continued.value.param == "previous_response_id"
    assert "Expected an ID that begins with 'resp'" in continued.value.message
    with pytest.raises(openai.BadRequestError) as retrieved:
        client.responses.retrieve("bad")
    assert retrieved.value.param == "response_id"
    assert received(sim) == before


def test_a_background_response_can_be_cancelled(client: OpenAI, sim: Any) -> None:
    # Generation held on both replicas, so the response is still running when cancelled.
    for url in sim.urls:
        httpx.post(url + "/pause_generation", timeout=10).raise_for_status()
    try:
        created = client.responses.create(model="demo", input="long task", background=True)
        assert created.status == "queued"
        cancelled = client.responses.cancel(created.id)
        assert cancelled.status == "cancelled"
        assert client.responses.retrieve(created.id).status == "cancelled"
    finally:
        for url in sim.urls:
            httpx.post(url + "/continue_generation", timeout=10).raise_for_status()


def test_a_finished_response_cannot_be_cancelled(client: OpenAI) -> None:
    created = client.responses.create(model="demo", input="short")
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(created.id)


def test_the_backend_receives_the_served_model_name(client: OpenAI, sim: Any) -> None:
    client.responses.create(model="painter", input="served as demo")
    stats = sim_stats(sim.urls[1])
    assert stats["last_request_path"] == "/v1/responses"
    assert stats["last_request_body"]["model"] == "demo"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "demo", "temperature": 3}, "temperature"),
        ({"model": "demo", "top_p": -1}, "top_p"),
        ({"model": "demo", "max_output_tokens": 8}, "max_output_tokens"),
        ({"model": "demo", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": "demo", "input": 5}, "input"),
        ({"model": "demo", "tool_choice": "always"}, "tool_choice"),
        ({"model": "demo", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        (
            {
                "model": "demo",
                "text": {"format": {"type": "json_schema", "name": "a b", "schema": {}}},
            },
            "text.format.name",
        ),
        ({"model": "demo", "reasoning": {"effort": "huge"}}, "reasoning.effort"),
        ({"model": "demo", "stream_options": {"include_obfuscation": False}}, "stream_options"),
        ({"model": "demo", "metadata": {"k": 1}}, "metadata"),
    ],
)
def test_an_invalid_response_request_is_a_400_naming_the_field(
    http: httpx.Client, sim: Any, fields: dict[str, Any], param: str
) -> None:
    before = received(sim)
    response = http.post("responses", json=fields)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert received(sim) == before


def test_a_backend_without_the_responses_api_gives_a_clear_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="chat-only", input="hi")
    assert caught.value.code == "unsupported_endpoint"
    assert "/v1/responses" in caught.value.message


def test_a_stream_the_backend_cuts_ends_with_an_error_the_sdk_raises(
    client: OpenAI, sim: Any
) -> None:
    set_faults(sim.urls[1], cut_stream_after_tokens=2)
    try:
        stream = client.responses.create(model="painter", input="cut me", stream=True)
        seen: list[str] = []
        with pytest.raises(openai.APIError, match="broke off"):
            seen.extend(event.type for event in stream)
        assert seen[0] == "response.created"
        assert "response.completed" not in seen
    finally:
        set_faults(sim.urls[1], cut_stream_after_tokens=None)


def test_the_sdks_stream_helper_assembles_the_final_response(client: OpenAI) -> None:
    with client.responses.stream(model="demo", input="Assemble me") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed"
    assert final.output_text == "".join(deltas)


def test_answers_name_the_model_the_client_asked_for(client: OpenAI) -> None:
    created = client.responses.create(model="painter", input="who am I")
    assert created.model == "painter"
    assert client.responses.retrieve(created.id).model == "painter"
    with client.responses.stream(model="painter", input="and now") as stream:
        models = {
            e.response.model
            for e in stream
            if e.type in ("response.created", "response.in_progress", "response.completed")
        }
    assert models == {"painter"}
