"""Bodies that would cost the gateway or a backend out of all proportion get OpenAI's 400:
deep nesting, `dimensions` past the model's width, token limits past its context."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import OpenAI

from tests.frontdoor.conftest import CONTEXT_LENGTH, EMBEDDING_DIMENSIONS, KEY
from tests.support.gateway import GatewayServer
from warmgate.proxy.wire.embeddings import MAX_EMBEDDING_DIMENSIONS

AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize(
    ("path", "template"),
    [
        (
            "/v1/chat/completions",
            '{"model":"demo","messages":[{"role":"user","content":"x"}],"x":%s}',
        ),
        ("/v1/completions", '{"model":"demo","prompt":"x","x":%s}'),
        ("/v1/embeddings", '{"model":"demo","input":"x","x":%s}'),
        ("/v1/responses", '{"model":"demo","input":"x","x":%s}'),
        ("/v1/images/generations", '{"model":"demo","prompt":"x","x":%s}'),
    ],
)
def test_a_body_nested_too_deeply_is_a_400_naming_the_body_logged_under_its_own_id(
    front: GatewayServer, http: httpx.Client, path: str, template: str, depth: int
) -> None:
    body = (template % ("[" * depth + "]" * depth)).encode()
    answer = http.post(path, content=body, headers=AUTH)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert "JSON body" in error["message"]
    assert "nested too deeply" in error["message"]
    line = front.request_line(answer.headers["x-request-id"])
    assert line["status"] == 400


def test_dimensions_above_the_models_width_is_a_400_naming_it(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model="demo", input="hi", dimensions=EMBEDDING_DIMENSIONS + 1)
    assert raised.value.param == "dimensions"
    assert raised.value.code == "integer_above_max_value"


def test_dimensions_within_the_models_width_are_served(client: OpenAI) -> None:
    answer = client.embeddings.create(
        model="demo", input="hi", dimensions=256, encoding_format="float"
    )
    assert answer.data


@pytest.mark.parametrize("dimensions", [MAX_EMBEDDING_DIMENSIONS + 1, 2**31])
def test_dimensions_past_any_embedding_width_is_a_400_without_a_declared_width(
    client: OpenAI, dimensions: int
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model="loose", input="hi", dimensions=dimensions)
    assert raised.value.param == "dimensions"


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_a_chat_token_limit_above_the_context_length_is_a_400_naming_it(
    client: OpenAI, field: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="demo",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={field: CONTEXT_LENGTH + 1},
        )
    assert raised.value.param == field
    assert f"at most {CONTEXT_LENGTH}" in raised.value.message


def test_completion_and_response_token_limits_are_held_to_the_context_length(
    client: OpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as completion:
        client.completions.create(model="demo", prompt="hi", max_tokens=CONTEXT_LENGTH + 1)
    with pytest.raises(openai.BadRequestError) as response:
        client.responses.create(model="demo", input="hi", max_output_tokens=CONTEXT_LENGTH + 1)
    assert (completion.value.param, response.value.param) == ("max_tokens", "max_output_tokens")


def test_a_token_limit_within_the_context_is_served(client: OpenAI) -> None:
    answer = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "hi"}], max_tokens=CONTEXT_LENGTH
    )
    assert answer.choices


def test_n_above_128_is_a_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "hi"}], n=129
        )
    assert raised.value.param == "n"
