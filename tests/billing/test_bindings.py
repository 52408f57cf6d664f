"""Response bindings that survive: a response created through one edge is found through any
other and after a restart; the store being down costs a retry, never a wrong answer."""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from openai import OpenAI

from benchmarks.cut_relay import CutRelay
from tests.billing.edge import ADMIN_KEY, sim_cluster
from tests.billing.toml_config import write_config
from tests.support.clock import FakeClock
from tests.support.ledger import stored_rows
from tests.support.served import ServedGateway
from warmgate.proxy.routing.bindings import Binding, ResponseBindings
from warmgate.proxy.store.bindings import open_binding_store
from warmgate.proxy.store.outage import StoreUnavailable

MADE = Binding("key_a", "demo", "demo@http://127.0.0.1:1")


@asynccontextmanager
async def edge_bindings(
    url: str, *, clock: FakeClock | None = None, **kwargs: Any
) -> AsyncIterator[ResponseBindings]:
    """The bindings of one edge over the store at `url`, started and closed."""
    clock = clock or FakeClock()
    store = open_binding_store(url, read_timeout_s=1.0, write_timeout_s=1.0, clock=clock)
    bindings = ResponseBindings(store, clock=clock, **kwargs)
    await bindings.start()
    try:
        yield bindings
    finally:
        await bindings.close()


@pytest.mark.anyio
async def test_a_binding_made_on_one_edge_is_found_on_another_and_after_a_restart(
    store_url: str,
) -> None:
    async with edge_bindings(store_url) as edge_a, edge_bindings(store_url) as edge_b:
        await edge_a.landed(edge_a.bind("resp_1", MADE))
        assert await edge_b.find("resp_1", "key_a") == MADE
        assert await edge_b.find("resp_1", "key_b") is None  # another key: unknown
        assert await edge_b.find("resp_unknown", "key_a") is None
        # The first binding of an id wins: an answer cannot re-point another key's response.
        await edge_b.landed(edge_b.bind("resp_1", Binding("key_b", "demo", "elsewhere")))
    async with edge_bindings(store_url) as restarted:
        assert await restarted.find("resp_1", "key_a") == MADE
        assert await restarted.find("resp_1", "key_b") is None
        assert edge_a.written == 1


@pytest.mark.anyio
async def test_bindings_past_the_retention_are_purged(store_url: str) -> None:
    clock = FakeClock()
    async with edge_bindings(store_url, clock=clock) as edge:
        await edge.landed(edge.bind("resp_old", MADE))
    clock.advance(31 * 86_400.0)
    async with edge_bindings(store_url, clock=clock, retention_s=30 * 86_400.0) as later:
        await later.landed(later.bind("resp_new", MADE))
    async with edge_bindings(store_url) as fresh:
        assert await fresh.find("resp_old", "key_a") is None
        assert await fresh.find("resp_new", "key_a") == MADE


@pytest.mark.postgres
@pytest.mark.anyio
async def test_a_binding_made_while_the_store_is_down_is_written_once_it_is_back(
    postgres_url: str, relay: CutRelay
) -> None:
    async with edge_bindings(relay.url_for(postgres_url), wait_s=0.5) as edge:
        relay.reset()
        with anyio.fail_after(30):  # a hang guard
            await edge.landed(edge.bind("resp_1", MADE))
        assert await edge.find("resp_1", "key_a") == MADE  # usable here meanwhile
        assert edge.written == 0
        relay.restore()
        with anyio.fail_after(30):
            while edge.written == 0:  # the writer retries on its own
                await anyio.lowlevel.checkpoint()
    async with edge_bindings(postgres_url) as other:
        assert await other.find("resp_1", "key_a") == MADE


@pytest.mark.postgres
@pytest.mark.anyio
async def test_a_lookup_through_a_partition_is_store_unavailable_not_a_hang(
    postgres_url: str, relay: CutRelay
) -> None:
    async with edge_bindings(relay.url_for(postgres_url)) as edge:
        await edge.landed(edge.bind("resp_known", MADE))
        relay.partition()
        assert await edge.find("resp_known", "key_a") == MADE  # in this edge's memory
        with anyio.fail_after(30), pytest.raises(StoreUnavailable):
            await edge.find("resp_from_elsewhere", "key_a")
        relay.restore()


@pytest.fixture(scope="module")
def two_replicas() -> Iterator[Any]:
    cluster = sim_cluster(replicas=2)
    yield cluster
    cluster.stop()


def served_edge(config: Path, secret: str) -> ServedGateway:
    return ServedGateway(config, environ={"WG_KEY": secret, "WG_ADMIN_KEY": ADMIN_KEY})


@pytest.mark.postgres
def test_a_response_made_on_edge_a_is_used_on_edge_b_and_after_a_restarts(
    postgres_url: str, two_replicas: Any, tmp_path: Path
) -> None:
    secret = "wg-" + secrets.token_urlsafe(32)
    configs = [
        write_config(
            tmp_path / f"{name}.toml",
            data_dir=tmp_path / name,
            ledger_url=postgres_url,
            backend_urls=list(two_replicas.urls),  # round robin: only a binding finds it
            keys=[{"name": "user", "secret_env": "WG_KEY"}],
        )
        for name in ("a", "b")
    ]
    edge_a, edge_b = served_edge(configs[0], secret), served_edge(configs[1], secret)
    try:
        on_a = OpenAI(base_url=edge_a.base_url, api_key=secret, max_retries=0)
        on_b = OpenAI(base_url=edge_b.base_url, api_key=secret, max_retries=0)
        created = on_a.responses.create(model="demo", input="remember this", max_output_tokens=16)
        # The client chains at once, through the other edge.
        follow = on_b.responses.create(
            model="demo", input="go on", previous_response_id=created.id, max_output_tokens=16
        )
        assert follow.previous_response_id == created.id
        for _ in range(2):  # both replicas in turn: the binding, not luck, finds it
            assert on_b.responses.retrieve(created.id).output_text == created.output_text
        events = list(on_a.responses.create(model="demo", input="stream", stream=True))
        # The simulator, like SGLang, ends `incomplete` when the answer reaches the token limit.
        assert events[-1].type in ("response.completed", "response.incomplete")
        streamed_id = events[-1].response.id
        assert on_b.responses.retrieve(streamed_id).id == streamed_id
        background = on_a.responses.create(model="demo", input="long task", background=True)
        assert on_b.responses.cancel(background.id).status == "cancelled"

        edge_a.signal(signal.SIGTERM)
        assert edge_a.wait() == 0
        edge_a.stop()
        edge_a = served_edge(configs[0], secret)
        on_a = OpenAI(base_url=edge_a.base_url, api_key=secret, max_retries=0)
        assert on_a.responses.retrieve(follow.id).output_text == follow.output_text
        again = on_a.responses.create(
            model="demo", input="and again", previous_response_id=follow.id, max_output_tokens=16
        )
        assert again.previous_response_id == follow.id
        assert again.status in ("completed", "incomplete")  # 16 tokens may reach the limit
    finally:
        edge_a.stop()
        edge_b.stop()
    # Retrieve and cancel are accounted like every other request, on both edges.
    endpoints = sorted(row.endpoint for row in asyncio.run(stored_rows(postgres_url)))
    assert endpoints.count("responses.retrieve") == 4
    assert endpoints.count("responses.cancel") == 1
