"""Signals under load, on real `warmgate serve` processes: SIGTERM loses nothing; SIGKILL, again
and again, loses no answered row and duplicates none (the spool is replayed at the next start)."""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from tests.billing.edge import ADMIN_KEY, sim_cluster
from tests.billing.toml_config import write_config
from tests.support.ledger import stored_rows
from tests.support.served import ServedGateway

MESSAGES: Any = [{"role": "user", "content": "Hello"}]
WORKERS = 16
ANSWERED_BEFORE_SIGNAL = 300
FLUSH_INTERVAL_MS = 100


@pytest.fixture(scope="module")
def demo_sim() -> Iterator[Any]:
    cluster = sim_cluster(replicas=2)
    yield cluster
    cluster.stop()


class Load:
    """`workers` clients sending requests (every third one streamed) until the gateway goes
    away; each answer's request id and the monotonic time it arrived."""

    def __init__(
        self,
        base_url: str,
        secret: str,
        *,
        workers: int = WORKERS,
        until: int = ANSWERED_BEFORE_SIGNAL,
    ) -> None:
        self.base_url = base_url
        self.secret = secret
        self.workers = workers
        self.until = until
        self.answered: dict[str, float] = {}
        self.reached = asyncio.Event()
        self.gone = 0

    async def worker(self, client: AsyncOpenAI, index: int) -> None:
        sent = index
        while True:
            sent += 1
            try:
                request_id = await (self.stream(client) if sent % 3 == 0 else self.answer(client))
            except openai.APIStatusError as error:  # an answer too: it has a row
                request_id = error.response.headers["x-request-id"]
            except (openai.APIConnectionError, httpx.HTTPError):
                self.gone += 1
                return
            self.answered[request_id] = time.monotonic()
            if len(self.answered) >= self.until:
                self.reached.set()

    @staticmethod
    async def answer(client: AsyncOpenAI) -> str:
        raw = await client.chat.completions.with_raw_response.create(
            model="demo", messages=MESSAGES, max_tokens=3
        )
        return raw.headers["x-request-id"]

    @staticmethod
    async def stream(client: AsyncOpenAI) -> str:
        """A stream counts as answered once the SDK has read it to its end."""
        chunks = await client.chat.completions.create(
            model="demo", messages=MESSAGES, max_tokens=3, stream=True
        )
        async for _ in chunks:
            pass
        return chunks.response.headers["x-request-id"]

    async def run(self, proc: ServedGateway, signum: signal.Signals) -> float:
        """Load until `until` answers, signal, load on until refused; the monotonic time of
        the signal."""
        async with AsyncOpenAI(
            base_url=self.base_url, api_key=self.secret, max_retries=0, timeout=30
        ) as client:
            workers = [asyncio.create_task(self.worker(client, i)) for i in range(self.workers)]
            await self.reached.wait()
            signalled_at = time.monotonic()
            proc.signal(signum)
            await asyncio.gather(*workers)
        return signalled_at


def start(tmp_path: Path, demo_sim: Any, name: str) -> tuple[ServedGateway, str, str, str]:
    secret = "wg-" + secrets.token_urlsafe(32)
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = write_config(
        tmp_path / f"{name}.toml",
        data_dir=tmp_path,
        ledger_url=ledger_url,
        backend_urls=list(demo_sim.urls),
        keys=[{"name": name, "secret_env": "WG_LOAD_KEY"}],
        flush_interval_ms=FLUSH_INTERVAL_MS,
    )
    return (
        ServedGateway(config, environ={"WG_LOAD_KEY": secret, "WG_ADMIN_KEY": ADMIN_KEY}),
        secret,
        ledger_url,
        str(config),
    )


def test_sigterm_under_load_leaves_a_row_for_every_answered_request(
    tmp_path: Path, demo_sim: Any
) -> None:
    proc, secret, ledger_url, config = start(tmp_path, demo_sim, "term")
    try:
        load = Load(proc.base_url, secret)
        asyncio.run(load.run(proc, signal.SIGTERM))
        assert proc.wait() == 0  # drained, flushed, and exited gracefully
    finally:
        proc.stop()
    assert '"event":"gateway_stopped"' in proc.output  # the lifespan ran to its end
    rows = asyncio.run(stored_rows(ledger_url))
    assert len(load.answered) >= ANSWERED_BEFORE_SIGNAL
    assert set(load.answered) <= {row.request_id for row in rows}
    assert len(rows) == len({row.request_id for row in rows})

    # A restart on the same database reads the rows and adds none of its own.
    restarted = ServedGateway(
        Path(config), environ={"WG_LOAD_KEY": secret, "WG_ADMIN_KEY": ADMIN_KEY}
    )
    try:
        last = max(load.answered, key=load.answered.__getitem__)
        found = httpx.get(
            f"{restarted.base_url}/generations/{last}",
            headers={"authorization": f"Bearer {secret}"},
            timeout=30,
        )
        assert found.status_code == 200
    finally:
        restarted.stop()
    assert len(asyncio.run(stored_rows(ledger_url))) == len(rows)


KILLS = 3
KILL_WORKERS = 30
ANSWERED_BEFORE_KILL = 150


def test_three_sigkills_under_load_lose_no_answered_row_and_duplicate_none(
    tmp_path: Path, demo_sim: Any, record_property: Any
) -> None:
    proc, secret, ledger_url, config = start(tmp_path, demo_sim, "kill")
    environ = {"WG_LOAD_KEY": secret, "WG_ADMIN_KEY": ADMIN_KEY}
    answered: dict[str, float] = {}
    try:
        for kill in range(KILLS):
            if kill:
                proc = ServedGateway(Path(config), environ=environ)
            load = Load(proc.base_url, secret, workers=KILL_WORKERS, until=ANSWERED_BEFORE_KILL)
            asyncio.run(load.run(proc, signal.SIGKILL))
            assert proc.wait() == -signal.SIGKILL
            proc.stop()
            answered.update(load.answered)
        # The next start replays what the last kill left in the spool; SIGTERM drains it.
        proc = ServedGateway(Path(config), environ=environ)
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    finally:
        proc.stop()
    rows = asyncio.run(stored_rows(ledger_url))
    counts = Counter(row.request_id for row in rows)
    missing = [rid for rid in answered if rid not in counts]
    duplicated = [rid for rid, count in counts.items() if count > 1]
    record_property("answered", len(answered))
    record_property("missing", len(missing))
    record_property("duplicated", len(duplicated))
    print(  # the measured outcome, shown with -s
        f"{KILLS} x SIGKILL: answered={len(answered)} rows={len(rows)} "
        f"missing={len(missing)} duplicated={len(duplicated)}"
    )
    assert len(answered) >= KILLS * ANSWERED_BEFORE_KILL
    assert missing == []
    assert duplicated == []
