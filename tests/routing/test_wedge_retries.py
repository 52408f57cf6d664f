"""The retry cap: a request that could be what brings replicas down (a query of death) is
tried on at most two backends; refused connections and 503s still get every attempt; the
fleet's retry budget and its metrics."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import msgspec
import openai
import pytest

from tests.routing.stack import (
    ADMIN_KEY,
    MODEL,
    LoopbackRelay,
    gateway_settings,
    running_gateway,
    sim_cluster,
)
from warmgate.proxy.pipeline.first_byte import FirstByteBudgets
from warmgate.proxy.pipeline.retry_budget import RetryBudget
from warmgate.proxy.settings import HealthSettings, ModelSettings, UpstreamSettings

pytestmark = pytest.mark.anyio

POISON = b"query-of-death"
NO_PROBES = HealthSettings(interval_s=3600.0, breaker_failures=10)


class Guillotine(LoopbackRelay):
    """Cuts the connection, once the request has been sent through, when the request holds
    POISON: a replica the request kills."""

    def __init__(self, target_url: str) -> None:
        super().__init__(target_url)
        self.killed = 0  # requests cut here

    def passes(
        self, data: bytes, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter
    ) -> bool:
        if POISON not in data:
            return True
        self.killed += 1
        upstream.transport.abort()
        client.transport.abort()
        return False


async def test_a_request_that_kills_its_backend_is_tried_on_two_backends_not_all(
    tmp_path: Path,
) -> None:
    async with sim_cluster(3) as cluster, AsyncExitStack() as stack:
        cutters = [await stack.enter_async_context(Guillotine(url)) for url in cluster.urls]
        settings = gateway_settings(
            [g.url for g in cutters], tmp_path, policy="round_robin", health=NO_PROBES
        )
        async with running_gateway(settings) as gateway:
            with pytest.raises(openai.APIStatusError) as caught:
                await gateway.client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": POISON.decode()}],
                    max_tokens=4,
                )
            assert caught.value.status_code == 502
            assert caught.value.code == "backend_unreachable"
            assert sum(g.killed for g in cutters) == 2
            # other requests still go everywhere
            for turn in range(6):
                reply = await gateway.client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": f"turn {turn}"}],
                    max_tokens=2,
                )
                assert reply.choices[0].message.content is not None
            metrics = await scrape(gateway.root)
            assert sample(metrics, "warmgate_upstream_retries_total") == 1
            refused = 'warmgate_upstream_retries_refused_total{reason="suspect_request"}'
            assert sample(metrics, refused) == 1


async def test_a_backend_that_refused_the_connection_never_had_the_suspect_request(
    tmp_path: Path,
) -> None:
    """The first backend's connection drops once it was sent the request (suspect: it may be
    the request's doing); the second refuses the connection, so it never had the request and
    does not count toward the two backends a suspect request may reach: the third answers.
    (A region's replicas going down together do this to the requests they held.)"""
    async with sim_cluster(3) as cluster, Guillotine(cluster.urls[0]) as cutter:
        await cluster.replicas[2].set_faults(refuse_connections=True)
        # Round robin: the first attempt takes the first backend, the retry the second of the
        # two left (the refusing one), the next retry the one left.
        urls = [cutter.url, cluster.urls[1], cluster.urls[2]]
        settings = gateway_settings(
            urls, tmp_path, policy="round_robin", health=HealthSettings(enabled=False)
        )
        async with running_gateway(settings) as gateway:
            reply = await gateway.client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": POISON.decode()}],
                max_tokens=2,
            )
            assert reply.choices[0].message.content is not None
            assert cutter.killed == 1
            assert cluster.replicas[1].telemetry.requests_received == 1


async def answered_turns(gateway: Any, turns: int) -> None:
    """`turns` chat requests, one after the other, each answered."""
    for turn in range(turns):
        reply = await gateway.client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"turn {turn}"}],
            max_tokens=2,
        )
        assert reply.choices[0].message.content is not None


async def test_refused_connections_still_get_every_attempt(tmp_path: Path) -> None:
    async with sim_cluster(3) as cluster:
        await cluster.replicas[0].set_faults(refuse_connections=True)
        await cluster.replicas[1].set_faults(refuse_connections=True)
        settings = gateway_settings(
            cluster.urls, tmp_path, policy="round_robin", health=HealthSettings(enabled=False)
        )
        async with running_gateway(settings) as gateway:
            await answered_turns(gateway, 3)
            assert cluster.replicas[2].telemetry.requests_received == 3


async def test_retries_past_the_fleet_budget_are_refused_and_counted(tmp_path: Path) -> None:
    async with sim_cluster(2) as cluster:
        await cluster.replicas[0].set_faults(fail_rate=1.0, fail_status=503)
        upstream = UpstreamSettings(retry_budget_ratio=0.0, retry_budget_min=0)
        settings = gateway_settings(cluster.urls, tmp_path, policy="round_robin", health=NO_PROBES)
        settings = msgspec.structs.replace(settings, upstream=upstream)
        async with running_gateway(settings) as gateway:
            statuses = []
            for turn in range(4):
                try:
                    await gateway.client.chat.completions.create(
                        model=MODEL,
                        messages=[{"role": "user", "content": f"turn {turn}"}],
                        max_tokens=2,
                    )
                    statuses.append(200)
                except openai.APIStatusError as error:
                    statuses.append(error.status_code)
            assert sorted(statuses) == [200, 200, 503, 503]  # round robin: half hit the 503s
            metrics = await scrape(gateway.root)
            refused = 'warmgate_upstream_retries_refused_total{reason="budget"}'
            assert sample(metrics, refused) == 2
            assert sample(metrics, "warmgate_upstream_retries_total") == 0


async def test_retries_after_a_refused_connection_need_no_room_in_the_budget(
    tmp_path: Path,
) -> None:
    """A backend that refused the connection never had the request: moving it elsewhere adds
    no work to the fleet, and it is how traffic leaves replicas that went down before their
    probes eject them, so an empty retry budget does not stop it."""
    async with sim_cluster(2) as cluster:
        await cluster.replicas[0].set_faults(refuse_connections=True)
        upstream = UpstreamSettings(retry_budget_ratio=0.0, retry_budget_min=0)
        # No probes: the refusing replica stays in the pool, and every other request meets it.
        settings = gateway_settings(
            cluster.urls, tmp_path, policy="round_robin", health=HealthSettings(enabled=False)
        )
        settings = msgspec.structs.replace(settings, upstream=upstream)
        async with running_gateway(settings) as gateway:
            await answered_turns(gateway, 4)
            assert cluster.replicas[1].telemetry.requests_received == 4
            metrics = await scrape(gateway.root)
            # Counted as retries (until the breaker took the refusing replica out), all of
            # them outside the empty budget.
            assert sample(metrics, "warmgate_upstream_retries_total") >= 1
            assert sample(metrics, 'warmgate_upstream_retries_refused_total{reason="budget"}') == 0


async def scrape(root: str) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.get(
            root + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert response.status_code == 200
        return response.text


def sample(metrics: str, series: str) -> float:
    """The value of one series in a Prometheus text page."""
    for line in metrics.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    raise AssertionError(f"{series} not in the metrics")


def test_the_retry_budget_allows_a_share_of_the_last_ten_seconds_and_a_floor() -> None:
    now = [100.0]
    budget = RetryBudget(ratio=0.2, minimum=3, clock=lambda: now[0])
    for _ in range(3):
        assert budget.allows()
        budget.started()
    assert not budget.allows()  # no traffic: the floor of 3
    for _ in range(20):
        budget.request()
    assert budget.allows()  # max(3, 0.2 x 20)
    budget.started()
    assert not budget.allows()
    now[0] += 9.5  # still inside the window
    assert not budget.allows()
    now[0] += 1.0  # the first second's retries and requests left the window
    assert budget.allows()
    now[0] += 60.0  # all of them
    for _ in range(3):
        budget.started()
    assert not budget.allows()


def test_a_long_prompt_earns_its_prefill_time_and_models_override_the_budget() -> None:
    upstream = UpstreamSettings(
        first_byte_timeout_s=30.0, first_byte_s_per_prompt_token=0.0005, answer_timeout_s=300.0
    )
    big = ModelSettings(name="big", first_byte_timeout_s=90.0)
    budgets = FirstByteBudgets(upstream, [big])
    assert budgets.seconds("demo", 100, stream=True) == pytest.approx(30.05)
    assert budgets.seconds("demo", 128_000, stream=True) == pytest.approx(94.0)
    assert budgets.seconds("demo", 0, stream=False) == pytest.approx(300.0)
    assert budgets.seconds("big", 0, stream=True) == pytest.approx(90.0)
    off = FirstByteBudgets(msgspec.structs.replace(upstream, first_byte_timeout_s=0.0))
    assert off.seconds("demo", 128_000, stream=True) is None
