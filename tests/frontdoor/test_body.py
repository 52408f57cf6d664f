"""The body is read only once the key and the content type passed; a refusal given before the
body arrived closes the connection instead of draining it; the first `Authorization` field
counts, on every route."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.frontdoor.conftest import ADMIN_KEY, KEY, MAX_BODY_BYTES
from tests.frontdoor.raw import exchange
from tests.support.gateway import GatewayServer

UPLOAD_BYTES = 25 * 1024 * 1024
# How long a test waits for the connection to end: below uvicorn's 5 s keep-alive timeout, which
# would end an idle connection anyway, and far above the moment the answer ends it.
CLOSED_WITHIN_S = 3.0
CHAT = b'{"model":"demo","messages":[{"role":"user","content":"hi"}]}'


def _port(front: GatewayServer) -> int:
    port: int = front.sock.getsockname()[1]
    return port


def _post_head(
    path: str, length: int, *fields: str, content_type: str = "application/json"
) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: gateway", f"Content-Type: {content_type}"]
    head += [f"Content-Length: {length}", *fields]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    "authorization",
    [(), ("Authorization: Bearer wrong-key",), ("Authorization: Basic dXNlcjpwYXNz",)],
    ids=["no-key", "wrong-key", "not-bearer"],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/audio/transcriptions"])
def test_an_upload_without_a_valid_key_is_refused_before_its_body_arrives(
    front: GatewayServer, path: str, authorization: tuple[str, ...]
) -> None:
    content_type = "multipart/form-data; boundary=x" if "audio" in path else "application/json"
    head = _post_head(path, UPLOAD_BYTES, *authorization, content_type=content_type)
    # Only the head and 1 KB of the 25 MB are sent: the answer cannot wait for the rest.
    answer = exchange(_port(front), head + b"x" * 1024, wait_s=CLOSED_WITHIN_S)
    assert answer.status == 401
    assert answer.error["code"] == "invalid_api_key"
    assert answer.closed, "the connection stayed open to drain the body"


def test_an_announced_body_over_the_limit_is_413_before_it_is_read_and_closed(
    front: GatewayServer,
) -> None:
    head = _post_head("/v1/chat/completions", MAX_BODY_BYTES + 1, f"Authorization: Bearer {KEY}")
    answer = exchange(_port(front), head + b"{", wait_s=CLOSED_WITHIN_S)
    assert answer.status == 413
    assert answer.error["code"] == "request_too_large"
    assert answer.closed


def test_a_streamed_body_over_the_limit_is_413_and_the_rest_is_not_drained(
    front: GatewayServer,
) -> None:
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    ).encode()
    piece = b"x" * 65536
    over = b"".join(
        b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(MAX_BODY_BYTES // 65536 + 2)
    )
    answer = exchange(
        _port(front), head + over, wait_s=CLOSED_WITHIN_S
    )  # the last chunk is never sent
    assert answer.status == 413
    assert answer.closed


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data"]
)
def test_a_body_that_is_not_json_is_openais_400_before_it_is_read(
    front: GatewayServer, content_type: str
) -> None:
    head = _post_head(
        "/v1/chat/completions", 10_000, f"Authorization: Bearer {KEY}", content_type=content_type
    )
    answer = exchange(_port(front), head + b"model=demo", wait_s=CLOSED_WITHIN_S)
    assert answer.status == 400
    assert answer.error["type"] == "invalid_request_error"
    assert str(answer.error["message"]).startswith(f"Invalid Content-Type header ({content_type})")
    assert answer.closed


def test_an_answered_request_keeps_its_connection(front: GatewayServer) -> None:
    with httpx.Client(base_url=front.root, timeout=30) as http:
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        first = http.post("/v1/chat/completions", content=CHAT, headers=headers)
        second = http.post("/v1/chat/completions", content=CHAT, headers=headers)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers.get("connection") != "close"


@pytest.fixture
def raw_http(front: GatewayServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=front.root, timeout=30) as http:
        yield http


def _twice(first: str, second: str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {first}"), ("Authorization", f"Bearer {second}")]


@pytest.mark.parametrize(
    ("first", "second", "status"), [(KEY, "garbage", 200), ("garbage", KEY, 401)]
)
def test_the_first_authorization_field_counts_on_every_route(
    raw_http: httpx.Client, first: str, second: str, status: int
) -> None:
    headers = [*_twice(first, second), ("Content-Type", "application/json")]
    hot_lane = raw_http.post("/v1/chat/completions", content=CHAT, headers=headers)
    browser = raw_http.post(
        "/v1/chat/completions", content=CHAT, headers=[*headers, ("Origin", "https://app")]
    )
    models = raw_http.get("/v1/models", headers=headers)
    usage = raw_http.get("/v1/usage", headers=headers)
    assert [hot_lane.status_code, browser.status_code, models.status_code, usage.status_code] == [
        status
    ] * 4


@pytest.mark.parametrize(
    ("first", "second", "status"), [(ADMIN_KEY, KEY, 200), (KEY, ADMIN_KEY, 403)]
)
def test_the_first_authorization_field_counts_on_admin_routes(
    raw_http: httpx.Client, first: str, second: str, status: int
) -> None:
    answer = raw_http.get("/admin/backends", headers=_twice(first, second))
    assert answer.status_code == status
