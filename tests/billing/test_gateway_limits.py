"""Limits, key isolation and admin access through the real gateway and the official SDK."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx2
import msgspec
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.billing.edge import ADMIN_KEY, Edge, edge_settings, running_edge

MESSAGES: Any = [{"role": "user", "content": "Count to three."}]
RATE_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
)


@pytest.fixture
def edge(demo_sim: Any, tmp_path: Path) -> Iterator[Edge]:
    settings = edge_settings(f"sqlite:///{tmp_path / 'ledger.db'}", list(demo_sim.urls))
    with running_edge(settings) as running:
        yield running


def ask(client: OpenAI) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="demo", messages=MESSAGES, max_tokens=2
    )


def test_a_key_without_limits_gets_the_default_rpm_headers_on_every_answer(edge: Edge) -> None:
    _, secret = edge.create_key()  # no rpm, concurrency or quota of its own
    client = edge.sdk(secret)
    plain = ask(client)
    with client.chat.completions.with_streaming_response.create(
        model="demo", messages=MESSAGES, max_tokens=2, stream=True
    ) as streamed:
        assert list(streamed.iter_lines())
    for answer in (plain, streamed):
        assert answer.headers["x-ratelimit-limit-requests"] == "6000"  # [limits] default_rpm
        assert int(answer.headers["x-ratelimit-remaining-requests"]) < 6000
        assert answer.headers["x-ratelimit-reset-requests"].endswith("s")


def test_n_requests_per_minute_pass_and_the_next_is_a_429_the_sdk_raises(edge: Edge) -> None:
    # A minute window may roll over mid-sequence (the gateway runs on the wall clock): then the
    # sequence is run again on a fresh key, in what is certainly one window.
    for _ in range(2):
        _, secret = edge.create_key(rpm=3)
        with OpenAI(base_url=edge.base_url, api_key=secret, max_retries=0) as client:
            started = time.time()
            answers = [ask(client) for _ in range(3)]
            with pytest.raises(openai.RateLimitError) as raised:
                ask(client)
        if int(started // 60) == int(time.time() // 60):
            break
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0"]
    assert all(a.headers["x-ratelimit-limit-requests"] == "3" for a in answers)
    assert answers[0].headers["x-ratelimit-reset-requests"].endswith("s")
    error = raised.value
    assert error.status_code == 429
    assert error.code == "rate_limit_exceeded"
    assert error.type == "requests"
    body = error.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    retry_after = int(error.response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert all(name in error.response.headers for name in RATE_HEADERS)


def test_a_spent_quota_is_insufficient_quota_and_the_sdk_does_not_retry(edge: Edge) -> None:
    _, secret = edge.create_key(quota=2, quota_period="month")
    seen: list[int] = []
    with OpenAI(
        base_url=edge.base_url,
        api_key=secret,
        max_retries=3,
        http_client=httpx2.Client(event_hooks={"response": [lambda r: seen.append(r.status_code)]}),
    ) as client:
        ask(client)
        ask(client)
        with pytest.raises(openai.RateLimitError) as raised:
            ask(client)
    assert raised.value.code == "insufficient_quota"
    assert raised.value.type == "insufficient_quota"
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert seen == [200, 200, 429]  # no retry of a quota that cannot come back in seconds


class Recorder(httpx2.AsyncBaseTransport):
    """Every response's arrival time and status; `limited` is set at the first 429."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self.requests: list[tuple[float, str]] = []
        self.responses: list[tuple[float, int, str | None]] = []
        self.limited = asyncio.Event()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append((time.monotonic(), request.url.path))
        response = await self._inner.handle_async_request(request)
        self.responses.append(
            (time.monotonic(), response.status_code, response.headers.get("retry-after"))
        )
        if response.status_code == 429:
            self.limited.set()
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _held_stream_then_sdk_retry(edge: Edge, secret: str) -> tuple[Any, Recorder]:
    async with AsyncOpenAI(base_url=edge.base_url, api_key=secret, max_retries=0) as holder:
        held = await holder.chat.completions.create(
            model="demo", messages=MESSAGES, max_tokens=2000, stream=True
        )
        recorder = Recorder()
        async with AsyncOpenAI(
            base_url=edge.base_url,
            api_key=secret,
            max_retries=2,
            http_client=httpx2.AsyncClient(transport=recorder),
        ) as client:
            call = asyncio.create_task(
                client.chat.completions.create(model="demo", messages=MESSAGES, max_tokens=2)
            )
            await recorder.limited.wait()  # the SDK got its 429 and now waits Retry-After
            await held.close()  # the slot comes back
            return await call, recorder


def test_the_sdk_honours_retry_after_and_succeeds_once_a_slot_frees(edge: Edge) -> None:
    _, secret = edge.create_key(max_concurrency=1, rpm=1000)
    completion, recorder = asyncio.run(_held_stream_then_sdk_retry(edge, secret))
    assert completion.choices[0].message.content
    first_429 = recorder.responses[0]
    assert first_429[1:] == (429, "1")
    assert recorder.responses[-1][1] == 200
    # The retry waited the 1 s Retry-After (the SDK's own first backoff is at most 0.5 s).
    assert recorder.requests[1][0] - first_429[0] >= 0.95


def test_concurrency_is_exact_at_the_boundary_and_every_answer_has_rate_headers(
    edge: Edge,
) -> None:
    _, secret = edge.create_key(max_concurrency=2, rpm=50)

    async def scenario() -> None:
        async with AsyncOpenAI(base_url=edge.base_url, api_key=secret, max_retries=0) as client:
            held = [
                await client.chat.completions.create(
                    model="demo", messages=MESSAGES, max_tokens=2000, stream=True
                )
                for _ in range(2)
            ]
            assert [h.response.headers["x-ratelimit-remaining-requests"] for h in held] == [
                "49",
                "48",
            ]
            with pytest.raises(openai.RateLimitError) as raised:
                await client.chat.completions.create(model="demo", messages=MESSAGES)
            assert raised.value.response.headers["retry-after"] == "1"
            assert all(name in raised.value.response.headers for name in RATE_HEADERS)
            await held[0].close()
            await held[1].close()

    asyncio.run(scenario())


def test_a_key_cannot_see_another_keys_generation_or_usage(edge: Edge) -> None:
    _, alice = edge.create_key(name="alice")
    _, bob = edge.create_key(name="bob")
    with OpenAI(base_url=edge.base_url, api_key=alice, max_retries=0) as client:
        answer = ask(client)
    request_id = answer.headers["x-request-id"]

    own = edge.get(f"/v1/generations/{request_id}", alice)
    assert own.status_code == 200
    assert own.json()["id"] == request_id

    other = edge.get(f"/v1/generations/{request_id}", bob)
    missing = edge.get("/v1/generations/chatcmpl-doesnotexist", bob)
    assert other.status_code == missing.status_code == 404
    assert other.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"
    assert set(other.json()["error"]) == {"message", "type", "param", "code"}

    with (
        OpenAI(base_url=edge.base_url, api_key=bob, max_retries=0) as client,
        pytest.raises(openai.NotFoundError),  # the SDK's view of the same answer
    ):
        client.get(f"/generations/{request_id}", cast_to=object)
    assert edge.get("/v1/usage", bob).json()["total"]["requests"] == 0
    assert edge.get("/v1/usage", alice).json()["total"]["requests"] == 1


def test_every_admin_route_refuses_user_keys_with_403_and_anonymous_callers_with_401(
    edge: Edge,
) -> None:
    _, user = edge.create_key()
    for method, path in [
        ("GET", "/admin/backends"),
        ("GET", "/admin/usage"),
        ("GET", "/admin/keys"),
        ("POST", "/admin/keys"),
        ("GET", "/admin/keys/key_x"),
        ("PATCH", "/admin/keys/key_x"),
        ("POST", "/admin/keys/key_x/revoke"),
        ("DELETE", "/admin/keys/key_x"),
    ]:
        as_user = edge.http.request(
            method, path, headers={"authorization": f"Bearer {user}"}, json={"name": "x"}
        )
        assert as_user.status_code == 403, (method, path)
        assert as_user.json()["error"]["code"] == "admin_key_required"
        for headers in ({}, {"authorization": "Bearer wg-not-a-key"}):
            refused = edge.http.request(method, path, headers=headers, json={"name": "x"})
            assert refused.status_code == 401, (method, path)
            assert refused.json()["error"]["code"] == "invalid_api_key"
    for path in ("/admin/backends", "/admin/usage", "/admin/keys"):
        assert edge.admin("GET", path).status_code == 200, path
    # The admin key is not a user key either.
    assert edge.get("/v1/usage", ADMIN_KEY).status_code == 401


def test_the_admin_api_updates_and_revokes_keys_on_the_spot(edge: Edge) -> None:
    key_id, secret = edge.create_key(name="carol", rpm=1)
    client = edge.sdk(secret)
    listed = edge.admin("GET", "/admin/keys").json()["data"]
    assert [k["name"] for k in listed if k["id"] == key_id] == ["carol"]
    assert all("secret" not in k for k in listed)

    updated = edge.admin("PATCH", f"/admin/keys/{key_id}", json={"rpm": 500})
    assert updated.json()["rpm"] == 500
    assert ask(client).headers["x-ratelimit-limit-requests"] == "500"

    bad = edge.admin("PATCH", f"/admin/keys/{key_id}", json={"quota": 5})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "quota_period"
    assert edge.admin("PATCH", "/admin/keys/key_nobody", json={"rpm": 1}).status_code == 404

    assert edge.admin("POST", f"/admin/keys/{key_id}/revoke").json()["revoked"] is True
    with pytest.raises(openai.AuthenticationError):
        ask(client)


def test_no_secret_is_stored_or_logged_in_clear(
    demo_sim: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = edge_settings(f"sqlite:///{tmp_path / 'ledger.db'}", list(demo_sim.urls))
    with running_edge(settings) as edge:
        _, secret = edge.create_key()
        ask(edge.sdk(secret))
        with pytest.raises(openai.AuthenticationError):
            edge.sdk(secret + "x").models.list()
        request_log = edge.server.log.getvalue()
    captured = capfd.readouterr()
    secrets = [secret.encode(), secret.removeprefix("wg-").encode(), ADMIN_KEY.encode()]
    stored = b"".join(path.read_bytes() for path in tmp_path.iterdir() if path.is_file())
    assert stored  # the database (and its WAL) really were read
    assert request_log  # one line per request was written
    for value in secrets:
        assert value not in stored
        assert value not in request_log
        assert value.decode() not in captured.out + captured.err


def test_with_keys_limits_and_ledger_switched_off_the_relay_serves_without_a_key(
    demo_sim: Any, tmp_path: Path
) -> None:
    """The configuration the overhead benchmark compares against: no key, no limit, no row."""
    base = edge_settings(f"sqlite:///{tmp_path / 'ledger.db'}", list(demo_sim.urls))
    settings = msgspec.structs.replace(
        base,
        auth=msgspec.structs.replace(base.auth, enabled=False),
        limits=msgspec.structs.replace(base.limits, enabled=False),
        ledger=msgspec.structs.replace(base.ledger, enabled=False),
    )
    with running_edge(settings) as edge:
        answer = ask(edge.sdk("no-key-at-all"))
        assert answer.parse().choices[0].message.content
        assert "x-ratelimit-limit-requests" not in answer.headers
        assert edge.server.runtime.ledger.pending == 0
    with closing(sqlite3.connect(tmp_path / "ledger.db")) as db:  # the key store made it
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert "warmgate_keys" in tables
    assert "warmgate_ledger" not in tables  # the ledger never opened its database


@pytest.mark.parametrize("limits_enabled", [True, False])
def test_a_key_limited_to_one_model_gets_the_unknown_model_404_for_any_other(
    demo_sim: Any, tmp_path: Path, limits_enabled: bool
) -> None:
    settings = edge_settings(
        f"sqlite:///{tmp_path / 'ledger.db'}", list(demo_sim.urls), limits_enabled=limits_enabled
    )
    requests: list[tuple[str, dict[str, Any]]] = [
        ("/chat/completions", {"messages": MESSAGES, "max_tokens": 2}),
        ("/completions", {"prompt": "Once", "max_tokens": 2}),
        ("/embeddings", {"input": "hello"}),
        ("/responses", {"input": "Hi", "max_output_tokens": 16}),
    ]
    with running_edge(settings) as edge:
        _, secret = edge.create_key(allowed_models=["demo"])
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx2.Client(base_url=edge.base_url, headers=headers, timeout=30) as http:
            for path, fields in requests:
                allowed = http.post(path, json={"model": "demo", **fields})
                forbidden = http.post(path, json={"model": "other", **fields})
                unknown = http.post(path, json={"model": "no-such-model", **fields})
                assert allowed.status_code == 200, (path, allowed.text)
                assert forbidden.status_code == unknown.status_code == 404, path
                # `other` serves `demo` under another name: the answer names neither the
                # target nor the fact that it exists.
                assert forbidden.content == unknown.content.replace(b"no-such-model", b"other")
                assert forbidden.json()["error"]["code"] == "model_not_found"
