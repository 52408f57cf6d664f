"""The hot lane (proxy/routes/lane.py) answers the generation routes as Litestar did: the body
limit whether or not the size is announced, browsers' CORS, every answer with its request id."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from tests.gateway.conftest import KEY, MAX_BODY_BYTES

AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
ORIGIN = "https://app.example"


def _chunks(total: int) -> Iterator[bytes]:
    yield b'{"model":"demo","messages":[{"role":"user","content":"'
    sent = 0
    while sent < total:
        yield b"x" * 16384
        sent += 16384
    yield b'"}]}'


def test_a_chunked_body_over_the_limit_is_413_in_openai_shape_with_a_request_id(
    http: httpx.Client,
) -> None:
    # a generator body goes out chunked: no Content-Length for the gateway to check first
    answer = http.post("/v1/chat/completions", content=_chunks(MAX_BODY_BYTES), headers=AUTH)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "request_too_large"
    # accounted as the request it was: the endpoint's id
    assert answer.headers["x-request-id"].startswith("chatcmpl-")
    assert answer.headers["content-type"] == "application/json"


def test_a_chunked_body_under_the_limit_is_answered(http: httpx.Client) -> None:
    answer = http.post("/v1/chat/completions", content=_chunks(4 * 16384), headers=AUTH)
    assert answer.status_code == 200
    assert answer.json()["id"] == answer.headers["x-request-id"]


def test_a_browser_request_gets_cors_headers_and_the_same_answer(http: httpx.Client) -> None:
    answer = http.post(
        "/v1/chat/completions",
        json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]},
        headers={**AUTH, "Origin": ORIGIN},
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
    assert answer.json()["id"] == answer.headers["x-request-id"]
    assert answer.json()["id"].startswith("chatcmpl-")


def test_a_body_without_a_json_content_type_is_400_with_a_request_id(
    http: httpx.Client,
) -> None:
    answer = http.post(
        "/v1/embeddings",
        content=b'{"model":"demo","input":"hi"}',
        headers={"Authorization": AUTH["Authorization"], "Content-Type": "text/plain"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith("Invalid Content-Type header (text/plain)")
    assert answer.headers["x-request-id"].startswith("req_")
