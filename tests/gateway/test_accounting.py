"""Each request leaves exactly one ledger row under its response id, and one JSON log line.

A gateway of its own: the test stops it (which drains the ledger writer) and then reads the
SQLite file and the log the way an operator would.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AuthenticationError, BadRequestError, NotFoundError, OpenAI

from tests.gateway.conftest import BACKEND_KEY, ENVIRON, KEY, gateway_settings
from tests.support.gateway import GatewayServer

USER: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def own_gateway(
    sim: Any, fragile_sim: Any, locked_sim: Any, tmp_path: Path
) -> Iterator[GatewayServer]:
    settings = gateway_settings(tmp_path, sim.urls, fragile_sim.urls, locked_sim.urls)
    server = GatewayServer(settings, environ=ENVIRON).start()
    yield server
    if server.running:
        server.stop()


def ledger_rows(data_dir: Path) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(data_dir / "ledger.sqlite3") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM warmgate_ledger").fetchall()
    return {row["request_id"]: dict(row) for row in rows}


def test_every_request_leaves_one_ledger_row_under_its_response_id_and_one_log_line(
    own_gateway: GatewayServer, tmp_path: Path
) -> None:
    ids: dict[str, str] = {}
    with OpenAI(base_url=own_gateway.base_url, api_key=KEY, max_retries=0) as sdk:
        ids["ok"] = sdk.chat.completions.create(model="demo", messages=USER, max_tokens=3).id
        stream = sdk.chat.completions.create(model="demo", messages=USER, max_tokens=3, stream=True)
        chunks = list(stream)  # to the end: [DONE]
        ids["stream"] = chunks[0].id
        with pytest.raises(BadRequestError) as bad:
            sdk.chat.completions.create(model="demo", messages=USER, temperature=9)
        ids["invalid"] = str(bad.value.request_id)
        with pytest.raises(NotFoundError) as missing:
            sdk.chat.completions.create(model="nope", messages=USER)
        ids["unknown_model"] = str(missing.value.request_id)
    with OpenAI(base_url=own_gateway.base_url, api_key="wg-wrong", max_retries=0) as stranger:
        with pytest.raises(AuthenticationError) as denied:
            stranger.chat.completions.create(model="demo", messages=USER)
        ids["bad_key"] = str(denied.value.request_id)
    own_gateway.stop()

    rows = ledger_rows(tmp_path)
    assert set(ids.values()) <= set(rows)
    assert len(rows) == len(ids)  # exactly one row per request
    ok, streamed = rows[ids["ok"]], rows[ids["stream"]]
    assert (ok["status"], ok["billed"], ok["key_id"], ok["model"]) == (200, 1, "key_tester", "demo")
    assert ok["price_micro_usd"] == 2000
    assert ok["completion_tokens"] > 0
    assert ok["backend"].startswith("demo@http://127.0.0.1:")
    assert (streamed["stream"], streamed["billed"], streamed["billed_reason"]) == (
        1,
        1,
        "completed",
    )
    assert streamed["completion_tokens"] > 0  # the usage chunk was read though not forwarded
    for failure, status in (("invalid", 400), ("unknown_model", 404), ("bad_key", 401)):
        row = rows[ids[failure]]
        assert (row["status"], row["billed"]) == (status, 0), failure
    assert rows[ids["bad_key"]]["key_id"] is None

    lines = [json.loads(line) for line in own_gateway.log_lines()]
    requests = [line for line in lines if line["event"] == "request"]
    assert sorted(line["request_id"] for line in requests) == sorted(ids.values())
    text = b"\n".join(own_gateway.log_lines())
    for secret in (KEY, "wg-wrong", BACKEND_KEY):
        assert secret.encode() not in text


def test_a_stream_the_client_leaves_is_billed_only_if_tokens_reached_it(
    own_gateway: GatewayServer, tmp_path: Path, fragile_sim: Any
) -> None:
    with (
        httpx.Client(base_url=own_gateway.base_url, timeout=30) as http,
        http.stream(
            "POST",
            "/chat/completions",
            json={
                "model": "fragile",
                "messages": USER,
                "max_tokens": 4000,
                "ignore_eos": True,  # SGLang's: generate all 4000 tokens (48 s in real time)
                "stream": True,
            },
            headers={"Authorization": f"Bearer {KEY}"},
        ) as answer,
    ):
        request_id = answer.headers["x-request-id"]
        events = 0
        for line in answer.iter_lines():
            events += line.startswith("data: ")
            if events == 4:
                break
    own_gateway.stop()
    row = ledger_rows(tmp_path)[request_id]
    assert (row["cancelled"], row["billed"], row["billed_reason"]) == (1, 1, "partial_stream")
    assert 0 < row["completion_tokens"] < 4000
