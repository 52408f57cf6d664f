"""POST /v1/images/generations through `warmgate serve`, with the official SDK."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.support.served import ServedGateway
from tests.surface.conftest import KEY, received, set_faults, sim_stats

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_b64_json_images_are_pngs(client: OpenAI) -> None:
    images = client.images.generate(
        model="painter", prompt="a red fox", response_format="b64_json", n=2
    )
    assert images.created > 0
    assert images.data is not None
    assert len(images.data) == 2
    for image in images.data:
        assert image.b64_json is not None
        assert base64.b64decode(image.b64_json).startswith(PNG_SIGNATURE)


def test_url_images_are_data_urls_of_the_image_bytes(client: OpenAI) -> None:
    images = client.images.generate(model="painter", prompt="a red fox")
    assert images.data is not None
    url = images.data[0].url
    assert url is not None
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    assert base64.b64decode(url[len(prefix) :]).startswith(PNG_SIGNATURE)


def test_the_same_prompt_gives_the_same_image_in_either_format(client: OpenAI) -> None:
    as_b64 = client.images.generate(model="painter", prompt="tide", response_format="b64_json")
    as_url = client.images.generate(model="painter", prompt="tide", response_format="url")
    assert as_b64.data is not None
    assert as_url.data is not None
    assert as_url.data[0].url == f"data:image/png;base64,{as_b64.data[0].b64_json}"


def test_the_backend_is_asked_for_base64_under_its_served_name(client: OpenAI, sim: Any) -> None:
    client.images.generate(model="painter", prompt="a lighthouse", response_format="url")
    body = sim_stats(sim.urls[1])["last_request_body"]
    assert (body["model"], body["response_format"]) == ("demo", "b64_json")


def test_an_image_is_accounted_at_the_flat_price(served: ServedGateway, http: httpx.Client) -> None:
    response = http.post("images/generations", json={"model": "painter", "prompt": "a cat"})
    assert response.status_code == 200
    record = served.request_log(response.headers["x-request-id"])
    assert (record["endpoint"], record["model"], record["billed"]) == (
        "images.generations",
        "painter",
        True,
    )


@pytest.mark.parametrize(
    ("fields", "status", "param"),
    [
        ({"model": "painter"}, 400, "prompt"),
        ({"prompt": "a cat"}, 400, "model"),
        ({"model": "painter", "prompt": ""}, 400, "prompt"),
        ({"model": "painter", "prompt": "a cat", "n": 11}, 400, "n"),
        ({"model": "painter", "prompt": "a cat", "response_format": "gif"}, 400, "response_format"),
        ({"model": "painter", "prompt": "a cat", "quality": "ultra"}, 400, "quality"),
        ({"model": "painter", "prompt": "a cat", "output_compression": 101}, 400,
         "output_compression"),
        ({"model": "painter", "prompt": "a cat", "stream": True}, 400, "stream"),
        ({"model": "nope", "prompt": "a cat"}, 404, "model"),
    ],
)  # fmt: skip
def test_an_invalid_image_request_gets_the_openai_error(
    http: httpx.Client, sim: Any, fields: dict[str, Any], status: int, param: str | None
) -> None:
    before = received(sim)
    response = http.post("images/generations", json=fields)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param
    assert received(sim) == before


def test_a_backend_without_an_image_api_gives_a_clear_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.images.generate(model="chat-only", prompt="a cat")
    assert caught.value.code == "unsupported_endpoint"


def test_a_client_that_leaves_while_the_image_is_made_is_accounted_as_cancelled(
    served: ServedGateway, sim: Any
) -> None:
    set_faults(sim.urls[1], hang_before_first_byte=True)
    try:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                served.base_url + "/images/generations",
                json={"model": "painter", "prompt": "never finished"},
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=httpx.Timeout(10.0, read=0.5),
            )
        line = served.wait_for(
            lambda text: '"endpoint":"images.generations"' in text and '"status":499' in text
        )
    finally:
        set_faults(sim.urls[1], hang_before_first_byte=False)
    record = json.loads(line)
    assert (record["cancelled"], record["billed"]) == (True, False)
