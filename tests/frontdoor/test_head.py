"""A request's head is bounded: its size, its number of fields and the time it takes to arrive.
Each refusal is OpenAI's error body, and the connection is closed after it."""

from __future__ import annotations

import pytest

from tests.frontdoor.conftest import HEADER_TIMEOUT_S, KEY
from tests.frontdoor.raw import connect, exchange, parse, read_until_closed
from tests.support.gateway import GatewayServer
from warmgate.proxy.settings import ServerSettings

ERROR_KEYS = {"message", "type", "param", "code"}


def _port(front: GatewayServer) -> int:
    port: int = front.sock.getsockname()[1]
    return port


def _get(path: str, *fields: bytes) -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: gateway\r\n" + b"".join(fields) + b"\r\n"


def test_ten_megabytes_of_headers_get_431_in_openai_shape_and_the_connection_closes(
    front: GatewayServer,
) -> None:
    flood = b"X-Flood: " + b"a" * (10 * 1024 * 1024) + b"\r\n"
    answer = exchange(_port(front), _get("/v1/models", flood))
    assert answer.status == 431
    assert set(answer.error) == ERROR_KEYS
    assert answer.error["code"] == "request_header_fields_too_large"
    assert answer.headers["connection"] == "close"
    assert answer.closed


def test_more_header_fields_than_allowed_get_431(front: GatewayServer) -> None:
    count = ServerSettings().max_header_count + 1
    fields = [b"X-Field-%d: 1\r\n" % i for i in range(count)]
    answer = exchange(_port(front), _get("/v1/models", *fields))
    assert answer.status == 431
    assert "too many header fields" in str(answer.error["message"])
    assert answer.closed


def test_a_url_longer_than_the_head_limit_gets_414(front: GatewayServer) -> None:
    answer = exchange(_port(front), _get("/v1/models/" + "m" * 40_000))
    assert answer.status == 414
    assert answer.error["code"] == "uri_too_long"
    assert answer.closed


def test_a_head_within_the_limits_is_served(front: GatewayServer) -> None:
    answer = exchange(
        _port(front),
        _get("/v1/models", f"Authorization: Bearer {KEY}\r\n".encode(), b"Connection: close\r\n"),
    )
    assert answer.status == 200


def test_a_slowloris_head_is_answered_408_and_closed_at_the_header_timeout(
    front: GatewayServer,
) -> None:
    # The test waits 20 times the head timeout at most: closed within it, or it fails.
    with connect(_port(front), wait_s=20 * HEADER_TIMEOUT_S) as conn:
        conn.sendall(b"GET /v1/models HTTP/1.1\r\nHost: gateway\r\nX-Slow: 1")  # never ends
        data, closed = read_until_closed(conn)
    answer = parse(data, closed=closed)
    assert answer.closed, "the connection was left open"
    assert answer.status == 408
    assert answer.error["code"] == "request_timeout"


def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(
    front: GatewayServer,
) -> None:
    with connect(_port(front)) as conn:
        data, closed = read_until_closed(conn)
    assert closed
    assert data == b""


def test_a_kept_alive_connection_is_held_to_the_timeout_for_its_next_head(
    front: GatewayServer,
) -> None:
    with connect(_port(front)) as conn:
        conn.sendall(_get("/health"))
        first = conn.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: gat")  # the next head stalls
        data, closed = read_until_closed(conn)
    answer = parse(data, closed=closed)
    assert (answer.status, answer.closed) == (408, True)


@pytest.mark.parametrize("garbage", [b"NOT HTTP AT ALL\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n"])
def test_a_head_that_is_not_http_gets_400_in_openai_shape(
    front: GatewayServer, garbage: bytes
) -> None:
    answer = exchange(_port(front), garbage)
    assert answer.status == 400
    assert set(answer.error) == ERROR_KEYS
    assert answer.closed
