"""Exactly-once rows through the real gateway: concurrent mixed requests, restarts, usage sums."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from tests.billing.edge import PRICE, PRICE_MICRO_USD, edge_settings, running_edge, sim_cluster
from tests.support.ledger import stored_rows
from warmgate.proxy.ledger import LedgerRow

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
    store_url: str, demo_sim: Any, broken_sim: Any
) -> None:
    settings = edge_settings(store_url, list(demo_sim.urls), list(broken_sim.urls))
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
