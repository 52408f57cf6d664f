"""Failures at a replica, end to end: the client keeps getting answers or clean OpenAI errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import openai
import pytest
from openai import AsyncStream
from openai.types.chat import ChatCompletionChunk

from tests.routing.stack import MODEL, ClientLoad, gateway_settings, running_gateway, sim_cluster
from warmgate.proxy.routing.member import HealthState, Member
from warmgate.proxy.settings import HealthSettings, Settings, UpstreamSettings

pytestmark = pytest.mark.anyio


def health_of(member: Member) -> HealthState:
    return member.health


async def test_a_replica_refusing_connections_costs_no_request_and_is_ejected_then_readmitted(
    tmp_path: Path,
) -> None:
    health = HealthSettings(
        interval_s=0.05, timeout_s=1.0, eject_after=2, readmit_after=2, slow_start_s=0
    )
    async with sim_cluster(3) as cluster:
        settings = gateway_settings(cluster.urls, tmp_path, policy="round_robin", health=health)
        async with running_gateway(settings) as gateway:
            checker = gateway.pool.health
            assert checker is not None
            victim = next(m for m in gateway.pool.members() if m.backend.url == cluster.urls[0])
            async with ClientLoad(gateway, max_tokens=4) as load:
                answers = load.answers
                await gateway.wait_for(lambda: len(answers) >= 30, 60)

                probes_at_fault = victim.probes
                await cluster.replicas[0].set_faults(refuse_connections=True)
                await gateway.wait_for(lambda: health_of(victim) is HealthState.EJECTED, 60)
                # ejected by the second probe that started after the fault: at most one probe
                # was already under way when the fault began, then two failed
                assert victim.probes - probes_at_fault <= 3
                assert victim.consecutive_failures == 2
                # requests routed before the ejection end first (re-checked every probe round)
                await gateway.wait_for(lambda: victim.outstanding == 0, 60)
                served_while_out = cluster.replicas[0].telemetry.requests_received
                answered_at_ejection = len(answers)
                await gateway.wait_for(lambda: len(answers) >= answered_at_ejection + 30, 60)
                assert cluster.replicas[0].telemetry.requests_received == served_while_out

                await cluster.replicas[0].set_faults(refuse_connections=False)
                await gateway.wait_for(lambda: health_of(victim) is HealthState.HEALTHY, 60)
                await gateway.wait_for(
                    lambda: cluster.replicas[0].telemetry.requests_received >= served_while_out + 5
                )

            assert load.errors == []
            assert victim.ejections == 1
            assert len(answers) > 60


async def test_a_replica_hanging_before_the_first_byte_times_out_and_stops_getting_requests(
    tmp_path: Path,
) -> None:
    health = HealthSettings(interval_s=3600.0, breaker_failures=2, breaker_cooldown_s=3600.0)
    async with sim_cluster(3) as cluster:
        settings = gateway_settings(cluster.urls, tmp_path, policy="round_robin", health=health)
        settings = _with_upstream(settings, UpstreamSettings(read_timeout_s=1.5))
        async with running_gateway(settings) as gateway:
            await cluster.replicas[1].set_faults(hang_before_first_byte=True)
            failures: list[openai.APIStatusError] = []
            async with asyncio.timeout(30):  # nothing may hang: the whole run is bounded
                for turn in range(12):
                    try:
                        reply = await gateway.client.chat.completions.create(
                            model=MODEL,
                            messages=[{"role": "user", "content": f"turn {turn}"}],
                            max_tokens=4,
                        )
                        assert reply.choices[0].message.content
                    except openai.APIStatusError as error:
                        failures.append(error)
            assert [(e.status_code, e.code) for e in failures] == [(504, "backend_timeout")] * 2
            # the breaker opened after two timeouts; the other requests went elsewhere
            hung = next(m for m in gateway.pool.members() if m.backend.url == cluster.urls[1])
            assert hung.breaker.opened_count == 1
            assert not hung.breaker.allows()
            await cluster.replicas[1].set_faults(hang_before_first_byte=False)


async def test_a_stream_cut_mid_way_ends_with_an_in_band_openai_error(tmp_path: Path) -> None:
    async with sim_cluster(1, cut_stream_after_tokens=3) as cluster:
        settings = gateway_settings(cluster.urls, tmp_path)
        async with running_gateway(settings) as gateway:
            stream = await gateway.client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "tell me a long story"}],
                max_tokens=50,
                stream=True,
            )
            received: list[str] = []
            with pytest.raises(openai.APIError) as caught:
                await read_all(stream, received)
            assert 0 < len(received) <= 3
            assert caught.value.code == "stream_interrupted"
            assert caught.value.body == {
                "message": caught.value.message,
                "type": "server_error",
                "param": None,
                "code": "stream_interrupted",
            }
            member = gateway.pool.members()[0]
            assert member.errors == 1
            assert gateway.pool.in_flight == 0


async def read_all(stream: AsyncStream[ChatCompletionChunk], received: list[str]) -> None:
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)


def _with_upstream(settings: Settings, upstream: UpstreamSettings) -> Settings:
    return msgspec.structs.replace(settings, upstream=upstream)


async def test_a_replica_answering_503_is_retried_elsewhere_and_its_breaker_opens(
    tmp_path: Path,
) -> None:
    health = HealthSettings(interval_s=3600.0, breaker_failures=3, breaker_cooldown_s=3600.0)
    async with sim_cluster(3) as cluster:
        await cluster.replicas[2].set_faults(fail_rate=1.0, fail_status=503)
        settings = gateway_settings(cluster.urls, tmp_path, policy="round_robin", health=health)
        async with running_gateway(settings) as gateway:
            for turn in range(12):
                reply = await gateway.client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": f"turn {turn}"}],
                    max_tokens=2,
                )
                assert reply.choices[0].message.content is not None
            failing = next(m for m in gateway.pool.members() if m.backend.url == cluster.urls[2])
            assert failing.errors == 3  # three 503s, each retried on another replica
            assert not failing.breaker.allows()
            assert cluster.replicas[2].telemetry.faults_injected == 3
