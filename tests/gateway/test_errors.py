"""Errors in OpenAI's shape: invalid requests (none reaching a backend), keys, models, routes,
methods, bodies, and backends that fail."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from openai import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    OpenAI,
)

from tests.gateway.conftest import KEY, MAX_BODY_BYTES, SimStats
from tests.support.gateway import GatewayServer

USER: list[Any] = [{"role": "user", "content": "hi"}]
AUTH = {"Authorization": f"Bearer {KEY}"}

# (call, arguments, the param OpenAI would name)
INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("chat", {"temperature": 2.5}, "temperature"),
    ("chat", {"top_p": 1.5}, "top_p"),
    ("chat", {"n": 0}, "n"),
    ("chat", {"presence_penalty": 2.5}, "presence_penalty"),
    ("chat", {"frequency_penalty": -3}, "frequency_penalty"),
    ("chat", {"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ("chat", {"top_logprobs": 3}, "top_logprobs"),
    ("chat", {"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ("chat", {"max_tokens": 0}, "max_tokens"),
    ("chat", {"max_completion_tokens": 0}, "max_completion_tokens"),
    ("chat", {"stream_options": {"include_usage": True}}, "stream_options"),
    ("chat", {"messages": []}, "messages"),
    ("chat", {"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ("chat", {"messages": [{"role": "user"}]}, "messages[0].content"),
    ("chat", {"tool_choice": "sometimes"}, "tool_choice"),
    (
        "chat",
        {"tools": [{"type": "function", "function": {"name": "get weather!"}}]},
        "tools[0].function.name",
    ),
    (
        "chat",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "a b"}}},
        "response_format.json_schema.name",
    ),
    ("chat", {"response_format": {"type": "yaml"}}, "response_format.type"),
    ("chat", {"logit_bias": {"50256": 101}}, "logit_bias"),
    ("completions", {"logprobs": 6}, "logprobs"),
    ("completions", {"prompt": [1, "two"]}, "prompt"),
    ("embeddings", {"input": ""}, "input"),
    ("embeddings", {"dimensions": 0}, "dimensions"),
    ("embeddings", {"encoding_format": "int8"}, "encoding_format"),
]


def _call(client: OpenAI, call: str, arguments: dict[str, Any]) -> object:
    if call == "chat":
        return client.chat.completions.create(**{"model": "demo", "messages": USER, **arguments})
    if call == "completions":
        return client.completions.create(**{"model": "demo", "prompt": "hi", **arguments})
    return client.embeddings.create(**{"model": "demo", "input": "hi", **arguments})


def _received(sim_stats: SimStats, sim: Any) -> int:
    return sum(sim_stats(url)["requests_received"] for url in sim.urls)


def test_invalid_requests_are_bad_requests_naming_the_param_and_never_reach_a_backend(
    sim_stats: SimStats, client: OpenAI, sim: Any
) -> None:
    before = _received(sim_stats, sim)
    params = []
    for call, arguments, _ in INVALID:
        with pytest.raises(BadRequestError) as raised:
            _call(client, call, arguments)
        error = raised.value
        assert error.status_code == 400
        assert error.type == "invalid_request_error", arguments
        params.append(error.param)
        assert error.request_id
    assert params == [param for _, _, param in INVALID]
    assert _received(sim_stats, sim) == before
    assert len(INVALID) >= 15


def test_a_missing_or_wrong_key_is_an_authentication_error(
    gateway: GatewayServer, http: httpx.Client
) -> None:
    with OpenAI(base_url=gateway.base_url, api_key="wg-not-a-key", max_retries=0) as stranger:
        with pytest.raises(AuthenticationError) as raised:
            stranger.chat.completions.create(model="demo", messages=USER)
        assert raised.value.code == "invalid_api_key"
        with pytest.raises(AuthenticationError):
            stranger.models.list()
    answer = http.post("/v1/chat/completions", json={"model": "demo", "messages": USER})
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_api_key"
    assert "wg-" not in answer.text


def test_an_unknown_model_is_not_found(client: OpenAI) -> None:
    with pytest.raises(NotFoundError) as raised:
        client.chat.completions.create(model="gpt-nonexistent", messages=USER)
    assert raised.value.code == "model_not_found"
    assert raised.value.param == "model"


def test_an_oversized_body_is_413_in_openai_shape(client: OpenAI, http: httpx.Client) -> None:
    big = "x" * (MAX_BODY_BYTES + 1)
    with pytest.raises(APIStatusError) as raised:
        client.chat.completions.create(model="demo", messages=[{"role": "user", "content": big}])
    assert raised.value.status_code == 413
    answer = http.post(
        "/v1/chat/completions",
        content=b'{"model":"demo","messages":[]}' + b" " * MAX_BODY_BYTES,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/nothing-here", 404),
        ("POST", "/v2/chat/completions", 404),
        ("GET", "/v1/chat/completions", 405),
        ("DELETE", "/v1/models", 405),
        ("PUT", "/v1/embeddings", 405),
    ],
)
def test_unknown_routes_and_wrong_methods_answer_in_openai_shape(
    http: httpx.Client, method: str, path: str, status: int
) -> None:
    answer = http.request(method, path, headers=AUTH)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["x-request-id"]
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"model": "demo", "messages": [', "application/json", 400),
        (b"", "application/json", 400),
        (b"[1, 2, 3]", "application/json", 400),
        (b'{"model": "demo", "messages": []}', "text/plain", 400),
        (b"model=demo", "application/x-www-form-urlencoded", 400),
    ],
    ids=["malformed-json", "empty-body", "not-an-object", "text-plain", "form"],
)
def test_bodies_that_are_not_json_objects_answer_in_openai_shape(
    http: httpx.Client, body: bytes, content_type: str, status: int
) -> None:
    answer = http.post(
        "/v1/chat/completions", content=body, headers={**AUTH, "Content-Type": content_type}
    )
    assert answer.status_code == status
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in answer.text


def test_a_failing_backend_is_an_openai_shaped_server_error(client: OpenAI, fragile: Any) -> None:
    for index in range(len(fragile.replicas)):
        fragile.set_faults_from_thread(index, fail_rate=1.0, fail_status=500)
    with pytest.raises(InternalServerError) as raised:
        client.chat.completions.create(model="fragile", messages=USER, max_tokens=2)
    assert raised.value.status_code == 502
    assert raised.value.code == "backend_error"


def test_a_backend_refusing_our_backend_key_is_our_502_not_the_clients_401(
    gateway: GatewayServer, client: OpenAI
) -> None:
    """The `locked` model's backend wants an API key the gateway was not given."""
    with pytest.raises(InternalServerError) as raised:
        client.chat.completions.create(model="locked", messages=USER, max_tokens=2)
    assert raised.value.status_code == 502
    assert "credentials" in raised.value.message


def test_an_unavailable_backend_is_retried_on_another_before_any_byte(
    client: OpenAI, fragile: Any
) -> None:
    fragile.set_faults_from_thread(0, fail_rate=1.0, fail_status=503)
    for _ in range(4):  # round robin: half of these meet the failing replica first
        answer = client.chat.completions.create(model="fragile", messages=USER, max_tokens=2)
        assert answer.choices[0].message.content is not None


def test_a_refused_connection_is_retried_on_another_backend(client: OpenAI, fragile: Any) -> None:
    fragile.set_faults_from_thread(1, refuse_connections=True)
    for _ in range(4):
        answer = client.chat.completions.create(model="fragile", messages=USER, max_tokens=2)
        assert answer.choices[0].message.content is not None


def test_when_every_backend_is_unavailable_the_client_gets_a_503(
    client: OpenAI, fragile: Any
) -> None:
    for index in range(len(fragile.replicas)):
        fragile.set_faults_from_thread(index, fail_rate=1.0, fail_status=503)
    with pytest.raises(InternalServerError) as raised:
        client.chat.completions.create(model="fragile", messages=USER, max_tokens=2)
    assert raised.value.status_code == 503
