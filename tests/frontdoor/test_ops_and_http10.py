"""`/metrics` behind its key when one is configured; HTTP/1.0 clients never get chunked
encoding, streams included."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.frontdoor.conftest import ENVIRON, KEY, METRICS_KEY, front_settings
from tests.frontdoor.raw import exchange
from tests.support.gateway import GatewayServer
from warmgate.proxy.http.app import MetricsKeyMissingError, create_app


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", f"Bearer {KEY}", f"Basic {METRICS_KEY}"]
)
def test_metrics_without_the_metrics_key_is_401_in_openai_shape(
    http: httpx.Client, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = http.get("/metrics", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_api_key"
    assert "http://" not in answer.text  # no backend URL


def test_metrics_with_the_metrics_key_are_served(http: httpx.Client) -> None:
    answer = http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")


def test_a_metrics_key_variable_that_is_not_set_stops_the_start(tmp_path: Path) -> None:
    settings = front_settings(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9")
    environ = {name: value for name, value in ENVIRON.items() if name != "WG_FRONT_METRICS"}
    with pytest.raises(MetricsKeyMissingError, match="WG_FRONT_METRICS"):
        create_app(settings, environ=environ)


def _port(front: GatewayServer) -> int:
    port: int = front.sock.getsockname()[1]
    return port


def _http10_post(body: bytes) -> bytes:
    head = (
        "POST /v1/chat/completions HTTP/1.0\r\nHost: gateway\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def test_an_http_1_0_stream_comes_whole_with_a_content_length(front: GatewayServer) -> None:
    body = b'{"model":"demo","stream":true,"messages":[{"role":"user","content":"hi"}]}'
    answer = exchange(_port(front), _http10_post(body))
    assert answer.status == 200
    assert "transfer-encoding" not in answer.headers
    assert int(answer.headers["content-length"]) == len(answer.body)
    assert answer.body.startswith(b"data: ")
    assert answer.body.endswith(b"data: [DONE]\n\n")
    assert answer.closed  # HTTP/1.0: one answer per connection


def test_an_http_1_0_error_and_a_litestar_route_are_framed_the_same(front: GatewayServer) -> None:
    refused = exchange(_port(front), _http10_post(b"{"))
    models = exchange(
        _port(front),
        f"GET /v1/models HTTP/1.0\r\nAuthorization: Bearer {KEY}\r\n\r\n".encode(),
    )
    for answer in (refused, models):
        assert "transfer-encoding" not in answer.headers
        assert int(answer.headers["content-length"]) == len(answer.body)
    assert (refused.status, models.status) == (400, 200)
