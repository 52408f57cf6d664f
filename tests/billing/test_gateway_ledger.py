"""Exactly-once rows through the real gateway: concurrent mixed requests, restarts, usage sums."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from benchmarks.cut_relay import CutRelay
from tests.billing.edge import PRICE, PRICE_MICRO_USD, edge_settings, running_edge, sim_cluster
from tests.billing.held_backend import HeldStreamBackend
from tests.support.ledger import spooled_rows, stored_rows
from warmgate.proxy.ledger import LedgerRow, spool_directory

MESSAGES: Any = [{"role": "user", "content": "Tell me about flat prices."}]


@pytest.fixture(scope="module")
def demo_sim() -> Iterator[Any]:
    cluster = sim_cluster(replicas=2)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def broken_sim() -> Iterator[Any]:
    cluster = sim_cluster(fail_rate=1.0, fail_status=500)
    yield cluster
    cluster.stop()


async def complete(client: AsyncOpenAI) -> tuple[str, str]:
    raw = await client.chat.completions.with_raw_response.create(
        model="demo", messages=MESSAGES, max_tokens=4
    )
    raw.parse()
    assert raw.headers["x-warmgate-price-usd"] == "0.002000"
    return raw.headers["x-request-id"], "completed"


async def stream(client: AsyncOpenAI) -> tuple[str, str]:
    chunks = await client.chat.completions.create(
        model="demo", messages=MESSAGES, max_tokens=4, stream=True
    )
    request_id = chunks.response.headers["x-request-id"]
    async for _ in chunks:
        pass
    return request_id, "completed"


async def leave_stream(client: AsyncOpenAI) -> tuple[str, str]:
    """Read the first token of a long stream, then hang up."""
    chunks = await client.chat.completions.create(
        model="demo", messages=MESSAGES, max_tokens=2000, stream=True
    )
    request_id = chunks.response.headers["x-request-id"]
    async for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    await chunks.close()
    return request_id, "partial_stream"


async def fail_at_backend(client: AsyncOpenAI) -> tuple[str, str]:
    with pytest.raises(openai.APIStatusError) as raised:
        await client.chat.completions.create(model="broken", messages=MESSAGES, max_tokens=4)
    assert raised.value.status_code == 502
    return raised.value.response.headers["x-request-id"], "backend_error"


async def forbidden_model(client: AsyncOpenAI) -> tuple[str, str]:
    with pytest.raises(openai.NotFoundError) as raised:
        await client.chat.completions.create(model="other", messages=MESSAGES, max_tokens=4)
    return raised.value.response.headers["x-request-id"], "client_error"


MIX = (
    [complete] * 8
    + [stream] * 8
    + [leave_stream] * 4
    + [fail_at_backend] * 4
    + [forbidden_model] * 2
)
BILLED = {"completed", "partial_stream"}


async def run_mix(base_url: str, secret: str) -> dict[str, str]:
    async with AsyncOpenAI(base_url=base_url, api_key=secret, max_retries=0) as client:
        results = await asyncio.gather(*(call(client) for call in MIX))
    return dict(results)


def test_concurrent_mixed_requests_leave_exactly_one_correctly_billed_row_each(
    store_url: str, demo_sim: Any, broken_sim: Any, tmp_path: Path
) -> None:
    settings = edge_settings(
        store_url, list(demo_sim.urls), list(broken_sim.urls), data_dir=tmp_path
    )
    with running_edge(settings) as edge:
        key_id, secret = edge.create_key(allowed_models=["demo", "broken"])
        expected = asyncio.run(run_mix(edge.base_url, secret))
    assert len(expected) == len(MIX)  # every request id is distinct

    # The gateway has shut down (drained): every row is in the database, once.
    rows = asyncio.run(stored_rows(store_url))
    mine = [row for row in rows if row.key_id == key_id]
    assert Counter(row.request_id for row in mine) == Counter(expected.keys())
    for row in mine:
        assert row.billed_reason == expected[row.request_id], row
        assert row.billed == (row.billed_reason in BILLED)
    partial = [row for row in mine if row.billed_reason == "partial_stream"]
    assert all(row.cancelled and row.stream for row in partial)
    assert all(row.status == 502 for row in mine if row.billed_reason == "backend_error")
    billed = sum(row.billed for row in mine)
    assert billed == 20
    assert sum(row.cost_micro_usd for row in mine) == 20 * PRICE_MICRO_USD

    # After a restart on the same database, the usage API sums exactly these rows.
    with running_edge(settings) as edge:
        usage = edge.get("/v1/usage", secret, params={"group_by": "model"}).json()
        assert usage["total"]["requests"] == len(mine)
        assert usage["total"]["billed_requests"] == billed
        assert usage["total"]["cost_micro_usd"] == 20 * PRICE_MICRO_USD
        assert usage["total"]["cost_usd"] == f"{20 * float(PRICE):.6f}"
        assert usage["total"]["completion_tokens"] == sum(r.completion_tokens for r in mine)
        assert usage["total"]["prompt_tokens"] == sum(r.prompt_tokens for r in mine)
        by_model = {b["group"]: b["requests"] for b in usage["data"]}
        assert by_model == dict(Counter(row.model for row in mine))

        admin = edge.admin("GET", "/admin/usage", params={"group_by": "key"}).json()
        (own,) = [b for b in admin["data"] if b["group"] == key_id]
        assert (own["requests"], own["cost_micro_usd"]) == (len(mine), 20 * PRICE_MICRO_USD)
        table = edge.admin(
            "GET", "/admin/usage", params={"group_by": "model"}, headers={"accept": "text/csv"}
        )
        assert table.headers["content-type"].startswith("text/csv")
        lines = table.text.splitlines()
        assert lines[0] == (
            "group,requests,billed_requests,cost_usd,prompt_tokens,cached_tokens,completion_tokens"
        )
        csv_rows = {line.split(",")[0]: line.split(",") for line in lines[1:]}
        assert csv_rows["demo"][1:4] == ["20", "20", "0.040000"]
        assert csv_rows["broken"][1:4] == ["4", "0", "0.000000"]
        assert csv_rows["other"][1:4] == ["2", "0", "0.000000"]

        some = next(row for row in mine if row.billed_reason == "partial_stream")
        generation = edge.get(f"/v1/generations/{some.request_id}", secret).json()
        assert generation["id"] == some.request_id
        assert generation["billed"] is True
        assert generation["cancelled"] is True
        assert generation["price_usd"] == "0.002000"
        assert set(LedgerRow.__struct_fields__) <= set(generation)
    assert len(asyncio.run(stored_rows(store_url))) == len(rows)  # the restart added nothing


UNSTORABLE_MODELS = ["m\u0000", "m\u0001\u001b[2J", "m\u007f\u0085", "m\ud800", "m" * 20_000]


def test_a_nul_in_a_model_name_is_answered_and_billing_goes_on(
    store_url: str, demo_sim: Any, tmp_path: Path
) -> None:
    settings = edge_settings(store_url, list(demo_sim.urls), data_dir=tmp_path)
    with running_edge(settings) as edge:
        key_id, secret = edge.create_key()
        client = edge.sdk(secret)
        refused: list[str] = []
        for model in UNSTORABLE_MODELS:
            # JSON escapes, as any client may send them (a lone surrogate is valid JSON text).
            body = json.dumps({"model": model, "messages": MESSAGES, "max_tokens": 2})
            answer = edge.http.post(
                "/v1/chat/completions",
                content=body,
                headers={"authorization": f"Bearer {secret}", "content-type": "application/json"},
            )
            assert answer.status_code in {400, 404}, answer.text
            assert answer.json()["error"]["type"] == "invalid_request_error"
            refused.append(answer.headers["x-request-id"])
        answered = []
        for _ in range(5):
            raw = client.chat.completions.with_raw_response.create(
                model="demo", messages=MESSAGES, max_tokens=2
            )
            answered.append(raw.headers["x-request-id"])
        usage = edge.get("/v1/usage", secret)
        assert usage.status_code == 200, usage.text
        assert usage.json()["total"]["requests"] == len(refused) + len(answered)
        assert usage.json()["total"]["billed_requests"] == len(answered)
    rows = {row.request_id: row for row in asyncio.run(stored_rows(store_url))}
    assert set(refused) | set(answered) <= set(rows)
    nul_row = rows[refused[0]]
    assert (nul_row.key_id, nul_row.status, nul_row.model) == (key_id, 404, "m\ufffd")


@pytest.mark.postgres
def test_usage_and_admin_reads_answer_503_while_the_store_is_partitioned(
    postgres_url: str, demo_sim: Any, tmp_path: Path
) -> None:
    with CutRelay("127.0.0.1", 5432) as relay:
        settings = edge_settings(
            relay.url_for(postgres_url),
            list(demo_sim.urls),
            data_dir=tmp_path,
            ledger={"read_timeout_s": 1.0, "write_timeout_s": 1.0},
        )
        with running_edge(settings) as edge:
            key_id, secret = edge.create_key()
            client = edge.sdk(secret)
            relay.partition()
            # Answers go on without the database; their rows wait in the spool.
            raw = client.chat.completions.with_raw_response.create(
                model="demo", messages=MESSAGES, max_tokens=2
            )
            request_id = raw.headers["x-request-id"]
            for answer in (
                edge.get("/v1/usage", secret),
                edge.get(f"/v1/generations/{request_id}-unknown", secret),
                edge.admin("GET", "/admin/usage"),
                edge.admin("GET", "/admin/keys"),
                edge.admin("GET", f"/admin/keys/{key_id}"),
                edge.admin("POST", "/admin/keys", json={"name": "during-the-cut"}),
            ):
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"]["code"] == "store_unavailable"
                assert answer.json()["error"]["type"] == "server_error"
            relay.restore()
            usage = edge.get("/v1/usage", secret)
            assert usage.status_code == 200, usage.text
            assert usage.json()["total"]["requests"] == 1
            assert edge.admin("GET", "/admin/keys").status_code == 200


def test_a_row_is_spooled_before_the_answer_that_ends_it_leaves(tmp_path: Path) -> None:
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with HeldStreamBackend() as backend:
        # An hour's flush window: the rows stay in the spool while the test looks.
        settings = edge_settings(ledger_url, [backend.url], flush_interval_ms=3_600_000)
        spool = spool_directory(tmp_path, ledger_url)
        with running_edge(settings) as edge:
            _, secret = edge.create_key()
            headers = {"authorization": f"Bearer {secret}"}
            body = {"model": "demo", "messages": MESSAGES}
            answer = edge.http.post("/v1/chat/completions", json=body, headers=headers)
            assert answer.status_code == 200
            spooled = {row.request_id: row for row in spooled_rows(spool)}
            assert spooled[answer.headers["x-request-id"]].billed_reason == "completed"

            stream = {**body, "stream": True}
            with edge.http.stream(
                "POST", "/v1/chat/completions", json=stream, headers=headers
            ) as events:
                for line in events.iter_lines():
                    if line == "data: [DONE]":
                        break
                # The backend still holds its stream open; the client has its whole answer.
                spooled = {row.request_id: row for row in spooled_rows(spool)}
                row = spooled[events.headers["x-request-id"]]
                assert (row.billed_reason, row.completion_tokens) == ("completed", 1)
                backend.release.set()
