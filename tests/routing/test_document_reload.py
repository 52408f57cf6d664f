"""A backends-document change while a stream is in flight: replicas come and go, the stream
completes on the replica that was removed, new requests go to the new set."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from tests.routing.stack import MODEL, gateway_settings, running_gateway, sim_cluster
from warmgate.proxy.settings import HealthSettings, ModelSettings, RoutingSettings

pytestmark = pytest.mark.anyio


def write_document(path: Path, version: int, urls: list[str]) -> None:
    document = {
        "version": version,
        "backends": [
            {"model": MODEL, "url": url, "cloud": "local", "region": "loopback"} for url in urls
        ],
    }
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document))
    temporary.replace(path)  # atomically, as `warmgate fleet sync` writes it


async def test_replicas_change_under_a_stream_in_flight_and_the_stream_completes(
    tmp_path: Path,
) -> None:
    document = tmp_path / "backends.json"
    # time_scale 1, decode slowed 4x: a 60-token answer streams for about 3 s
    async with sim_cluster(3, time_scale=1.0, slow_decode_factor=4.0) as cluster:
        a, b, c = cluster.urls
        write_document(document, 1, [a, b])
        settings = gateway_settings(
            [],
            tmp_path,
            health=HealthSettings(probe_path="/ready", interval_s=0.05, timeout_s=2.0),
            routing=RoutingSettings(
                load_poll_interval_s=0,
                backends_document=str(document),
                document_poll_interval_s=0.02,
            ),
        )
        settings = msgspec.structs.replace(
            settings, models=[ModelSettings(name=MODEL, policy="round_robin")]
        )
        async with running_gateway(settings) as gateway:
            pool = gateway.pool
            assert {m.backend.url for m in pool.snapshot.healthy[MODEL]} == {a, b}
            stream = await gateway.client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "count slowly to sixty"}],
                max_tokens=60,
                stream=True,
            )
            chunks = aiter(stream)
            first = await anext(chunks)
            assert first.id
            assert cluster.replicas[0].telemetry.requests_received == 1  # it runs on a

            write_document(document, 2, [b, c])
            await gateway.wait_for(
                lambda: {m.backend.url for m in pool.snapshot.healthy[MODEL]} == {b, c}
            )
            retired = [v for v in pool.describe() if v["retired"]]
            assert [(v["url"], v["outstanding"]) for v in retired] == [(a, 1)]
            assert pool.in_flight == 1

            text, finish = "", None
            async for chunk in chunks:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                    finish = chunk.choices[0].finish_reason or finish
            assert finish in {"stop", "length"}  # a complete stream, not a broken one
            assert text
            assert pool.in_flight == 0
            assert not [v for v in pool.describe() if v["retired"]]

            for turn in range(4):
                reply = await gateway.client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": f"hi {turn}"}], max_tokens=2
                )
                assert reply.choices[0].message.content is not None
            served = [replica.telemetry.requests_received for replica in cluster.replicas]
            assert served == [1, 2, 2]  # the removed replica got nothing new
            assert pool.document is not None
            assert pool.document.version == 2
