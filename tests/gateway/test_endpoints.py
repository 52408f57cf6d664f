"""Completions, embeddings and models through the gateway with the official SDK."""

from __future__ import annotations

from array import array
from typing import Any

import httpx
import httpx2
import pytest
from openai import NotFoundError, OpenAI

from tests.gateway.conftest import ONLY_ACME_KEY
from tests.support.gateway import GatewayServer
from tests.support.recording import RecordingTransport


def test_a_completion_carries_the_request_id_as_its_id(client: OpenAI) -> None:
    raw = client.completions.with_raw_response.create(
        model="demo", prompt="Once upon a time", max_tokens=6
    )
    completion = raw.parse()
    assert completion.id.startswith("cmpl-")
    assert raw.headers["x-request-id"] == completion.id
    assert completion.object == "text_completion"
    assert completion.choices[0].text
    assert completion.usage is not None


def test_a_streamed_completion_arrives_in_chunks_with_one_id(lenient_client: OpenAI) -> None:
    with lenient_client.completions.with_streaming_response.create(
        model="demo", prompt="Once upon a time", max_tokens=6, stream=True
    ) as raw:
        request_id = raw.headers["x-request-id"]
        chunks = list(raw.parse())
    assert len(chunks) > 1
    assert {chunk.id for chunk in chunks} == {request_id}
    assert all(chunk.usage is None for chunk in chunks)
    assert "".join(chunk.choices[0].text for chunk in chunks if chunk.choices)


def test_a_streamed_completion_with_include_usage_ends_with_usage(
    lenient_client: OpenAI,
) -> None:
    chunks = list(
        lenient_client.completions.create(
            model="demo",
            prompt=[1, 2, 3, 4],
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 4


def test_embeddings_in_floats_and_in_the_sdk_default_base64_are_the_same_vectors(
    client: OpenAI, lenient_client: OpenAI
) -> None:
    texts = ["warm GPUs", "cold starts"]
    floats = client.embeddings.create(model="demo", input=texts, encoding_format="float")
    default = lenient_client.embeddings.create(model="demo", input=texts)  # SDK asks base64
    assert [item.index for item in default.data] == [0, 1]
    for as_float, as_base64 in zip(floats.data, default.data, strict=True):
        assert len(as_base64.embedding) == len(as_float.embedding) > 0
        # base64 carries float32: the float answer rounded to float32 is the same vector.
        assert array("f", as_base64.embedding) == array("f", as_float.embedding)


def test_the_model_list_shows_every_served_model(client: OpenAI) -> None:
    ids = {model.id for model in client.models.list()}
    assert ids == {"demo", "acme/demo-7b", "fragile", "guarded", "locked"}


def test_a_backend_api_key_from_the_environment_opens_a_guarded_backend(client: OpenAI) -> None:
    answer = client.chat.completions.create(
        model="guarded", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    )
    assert answer.choices[0].message.content is not None


def test_a_model_id_with_a_slash_is_retrieved(client: OpenAI) -> None:
    model = client.models.retrieve("acme/demo-7b")  # sent as /v1/models/acme%2Fdemo-7b
    assert model.id == "acme/demo-7b"
    assert model.object == "model"
    assert client.models.retrieve("demo-latest").id == "demo"


def test_an_unknown_model_is_not_found(client: OpenAI) -> None:
    with pytest.raises(NotFoundError) as raised:
        client.models.retrieve("org/no-such-model")
    assert raised.value.code == "model_not_found"


def test_a_key_sees_and_uses_only_the_models_it_may(
    gateway: GatewayServer, transport: RecordingTransport
) -> None:
    with OpenAI(
        base_url=gateway.base_url,
        api_key=ONLY_ACME_KEY,
        max_retries=0,
        http_client=httpx2.Client(transport=transport),
        _strict_response_validation=True,
    ) as sdk:
        assert [model.id for model in sdk.models.list()] == ["acme/demo-7b"]
        with pytest.raises(NotFoundError):
            sdk.models.retrieve("demo")
        with pytest.raises(NotFoundError) as raised:
            sdk.chat.completions.create(model="demo", messages=[{"role": "user", "content": "x"}])
        assert raised.value.code == "model_not_found"
        answer = sdk.chat.completions.create(
            model="acme/demo-7b", messages=[{"role": "user", "content": "x"}], max_tokens=2
        )
        assert answer.choices[0].message.content is not None


def test_health_ready_openapi_and_metrics_answer_without_a_key(http: httpx.Client) -> None:
    assert http.get("/health").json() == {"status": "ok"}
    assert http.get("/ready").json() == {"status": "ready"}
    schema: dict[str, Any] = http.get("/openapi.json").json()
    assert schema["openapi"] == "3.1.0"
    assert "/v1/chat/completions" in schema["paths"]
    assert "CreateChatCompletionRequest" in schema["components"]["schemas"]
    metrics = http.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "warmgate_backend_healthy" in metrics.text


def test_cors_preflight_allows_the_sdk_headers_and_exposes_the_request_id(
    http: httpx.Client,
) -> None:
    preflight = http.options(
        "/v1/chat/completions",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-stainless-os",
        },
    )
    assert preflight.status_code in (200, 204)
    allowed = preflight.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "x-stainless-os", "openai-organization"):
        assert header in allowed
    answer = http.get("/health", headers={"Origin": "https://app.example"})
    assert answer.headers["access-control-allow-origin"] == "*"
    exposed = answer.headers["access-control-expose-headers"].lower()
    assert "x-request-id" in exposed
    assert "openai-processing-ms" in exposed
