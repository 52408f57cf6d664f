"""The ledger's spool: each recorded row on disk before any flush, replayed once after a crash
or a failed drain, deleted once stored, never taken from a live process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import msgspec
import pytest

from benchmarks.cut_relay import CutRelay
from tests.support.ledger import ledger_row, spooled_rows, stored_rows
from warmgate.proxy.ledger import (
    Ledger,
    open_ledger,
    open_ledger_store,
    spool_directory,
)
from warmgate.proxy.ledger import spool as spool_module
from warmgate.proxy.ledger.spool import Spool
from warmgate.proxy.ledger.writer import SWEEP_INTERVAL_S
from warmgate.proxy.store.outage import StoreUnavailable

REPO_ROOT = Path(__file__).parents[2]

# A ledger in a process of its own: stores `stored` rows, records `spooled` more, says so, and
# waits to be killed.
RECORD_AND_WAIT = """
import asyncio, sys
from pathlib import Path
from tests.support.ledger import ledger_row
from warmgate.proxy.ledger import open_ledger

async def main(url, data_dir, stored, spooled):
    ledger = open_ledger(url, flush_interval_s=3600, data_dir=Path(data_dir))
    await ledger.start()
    for i in range(stored):
        ledger.record(ledger_row(f"req_{i}"))
    await ledger.flush()
    for i in range(stored, stored + spooled):
        ledger.record(ledger_row(f"req_{i}"))
    print("recorded", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


def kill_after_recording(url: str, data_dir: Path, *, stored: int, spooled: int) -> None:
    process = subprocess.Popen(  # noqa: S603  # our own interpreter, fixed arguments
        [sys.executable, "-c", RECORD_AND_WAIT, url, str(data_dir), str(stored), str(spooled)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO_ROOT,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"recorded\n"
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


@pytest.mark.anyio
async def test_each_recorded_row_is_in_the_spool_before_any_flush(
    sqlite_url: str, tmp_path: Path
) -> None:
    rows = [ledger_row(f"req_{i}") for i in range(5)]
    async with open_ledger(sqlite_url, flush_interval_s=3600, data_dir=tmp_path) as ledger:
        for row in rows:
            ledger.record(row)
        assert spooled_rows(spool_directory(tmp_path, sqlite_url)) == rows


@pytest.mark.anyio
async def test_rows_of_a_killed_process_are_stored_once_at_the_next_start(
    store_url: str, tmp_path: Path
) -> None:
    kill_after_recording(store_url, tmp_path, stored=30, spooled=40)
    directory = spool_directory(tmp_path, store_url)
    left = spooled_rows(directory)
    assert [row.request_id for row in left] == [f"req_{i}" for i in range(30, 70)]
    assert len(await stored_rows(store_url)) == 30
    # As if the writer had stored some of them just before the kill: a replay skips them.
    store = open_ledger_store(store_url)
    await store.start()
    assert await store.insert(left[:10]) == 10
    await store.close()

    async with open_ledger(store_url, flush_interval_s=3600, data_dir=tmp_path) as restarted:
        assert restarted.replayed == 40
        assert await restarted.flush() == 30
    rows = await stored_rows(store_url)
    assert sorted(row.request_id for row in rows) == sorted(f"req_{i}" for i in range(70))
    assert list(directory.glob("*.spool")) == []


@pytest.mark.anyio
async def test_the_spool_of_a_live_ledger_is_never_taken_by_another(
    sqlite_url: str, tmp_path: Path
) -> None:
    async with open_ledger(sqlite_url, flush_interval_s=3600, data_dir=tmp_path) as first:
        first.record(ledger_row("req_first"))
        async with open_ledger(sqlite_url, flush_interval_s=3600, data_dir=tmp_path) as second:
            assert second.replayed == 0
            second.record(ledger_row("req_second"))
            assert await second.flush() == 1
        assert await first.flush() == 1
    assert sorted(row.request_id for row in await stored_rows(sqlite_url)) == [
        "req_first",
        "req_second",
    ]


@pytest.mark.anyio
async def test_segments_are_deleted_once_their_rows_are_stored(
    sqlite_url: str, tmp_path: Path
) -> None:
    directory = spool_directory(tmp_path, sqlite_url)
    async with open_ledger(sqlite_url, flush_interval_s=3600, data_dir=tmp_path) as ledger:
        for batch in range(3):
            for i in range(100):
                ledger.record(ledger_row(f"req_{batch}_{i}"))
            assert await ledger.flush() == 100
            assert spooled_rows(directory) == []  # no segment holds a stored row
        ledger.record(ledger_row("req_last"))
        assert [row.request_id for row in spooled_rows(directory)] == ["req_last"]
        assert await ledger.flush() == 1
        assert await ledger.flush() == 0  # an idle flush lets go of what is stored
        assert spooled_rows(directory) == []
    assert list(directory.glob("*")) == []


@pytest.mark.postgres
@pytest.mark.anyio
async def test_rows_a_drain_could_not_store_are_stored_at_the_next_start(
    postgres_url: str, relay: CutRelay, tmp_path: Path
) -> None:
    url = relay.url_for(postgres_url)
    async with open_ledger(url, flush_interval_s=3600, data_dir=tmp_path) as ledger:
        for i in range(25):
            ledger.record(ledger_row(f"req_{i}"))
        relay.reset()  # the database goes away before the drain at shutdown
    relay.restore()
    assert await stored_rows(postgres_url) == []
    async with open_ledger(url, flush_interval_s=3600, data_dir=tmp_path) as restarted:
        assert restarted.replayed == 25
        assert await restarted.flush() == 25
    assert len(await stored_rows(postgres_url)) == 25


async def catch_up(ledger: Ledger) -> None:
    """Flush until nothing is queued; a connection the cut left in the pool fails once."""
    with anyio.fail_after(30):
        while ledger.pending:
            with contextlib.suppress(StoreUnavailable):
                await ledger.flush()


class StepClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.postgres
@pytest.mark.anyio
async def test_a_backlog_past_max_pending_waits_in_the_spool_and_lands_later(
    postgres_url: str, relay: CutRelay, tmp_path: Path
) -> None:
    url = relay.url_for(postgres_url)
    clock = StepClock()
    ledger = Ledger(
        open_ledger_store(url),
        flush_interval_s=3600,
        batch_rows=10,
        max_pending=20,
        spool=Spool(spool_directory(tmp_path, url)),
        monotonic=clock,
    )
    async with ledger:
        relay.reset()
        for i in range(55):
            ledger.record(ledger_row(f"req_{i}"))
        assert ledger.pending <= 20  # memory stays bounded
        assert ledger.spilled > 0
        relay.restore()
        await catch_up(ledger)
        sweeps = 0
        while ledger.replayed < ledger.spilled and sweeps < 10:
            # What the writer does once it has caught up: a few segments at a time.
            clock.now += SWEEP_INTERVAL_S
            ledger.sweep()
            sweeps += 1
            await catch_up(ledger)
        assert ledger.replayed == ledger.spilled
        assert sweeps > 1  # each sweep claimed no more than max_pending allows
    rows = await stored_rows(postgres_url)
    assert sorted(row.request_id for row in rows) == sorted(f"req_{i}" for i in range(55))


def test_a_spool_whose_directory_was_removed_makes_it_again_for_its_next_segment(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "spool"
    spool = Spool(directory)
    assert spool.append(ledger_row("req_first"))  # the directory is made for the first segment
    spool.seal()
    spool.discard()
    directory.rmdir()  # an operator's clean-up while the gateway runs
    assert spool.append(ledger_row("req_second"))
    assert spool.failures == 0
    assert [row.request_id for row in spooled_rows(directory)] == ["req_second"]
    spool.close(keep=False)


def test_rows_past_a_full_segment_go_to_the_next_and_every_row_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    row_bytes = len(msgspec.json.encode(ledger_row("req_00"))) + 1
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 3 * row_bytes)  # three rows a segment
    directory = tmp_path / "spool"
    spool = Spool(directory)
    ids = [f"req_{i:02}" for i in range(8)]
    for request_id in ids[:5]:
        assert spool.append(ledger_row(request_id))
    spool.seal()  # the full segment and the current one: 5 rows queued
    assert spool.sealed == 2
    for request_id in ids[5:]:
        assert spool.append(ledger_row(request_id))
    assert sorted(row.request_id for row in spooled_rows(directory)) == ids
    spool.discard()  # the first 5 are stored
    assert [row.request_id for row in spooled_rows(directory)] == ids[5:]
    spool.close(keep=True)  # a process that dies with 3 rows unstored
    successor = Spool(directory)
    assert [row.request_id for row in successor.claim(100)] == ids[5:]
    successor.discard()
    assert list(directory.glob("*.spool")) == []
    assert spool.failures == successor.failures == 0


def test_without_posix_fallocate_a_segment_is_allocated_by_writing_zeros(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on macOS, which has no posix_fallocate: the segment's blocks are still allocated
    before any row is copied in (a sparse page would fail when first written on a full disk)."""
    monkeypatch.delattr(os, "posix_fallocate")
    directory = tmp_path / "spool"
    spool = Spool(directory)
    assert spool.append(ledger_row("req_mac"))
    (segment,) = directory.glob("*.spool")
    assert segment.stat().st_blocks * 512 >= spool_module.SEGMENT_BYTES  # allocated, not sparse
    assert [row.request_id for row in spooled_rows(directory)] == ["req_mac"]
    spool.close(keep=False)
    assert spool.failures == 0
