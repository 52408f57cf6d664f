"""Unauthenticated uploads cost the gateway nothing: 20 of 25 MB at once, answered 401 without
their bodies being read, grow `warmgate serve`'s resident memory by less than 20 MB (reading
them had cost 528 MB)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.served import ServedGateway

UPLOADS = 20
UPLOAD_BYTES = 25 * 1024 * 1024
MAX_GROWTH_BYTES = 20 * 1024 * 1024
CONFIG = """
data_dir = "{data_dir}"
port = 0
[server]
access_log = false
[health]
enabled = false
[routing]
load_poll_interval_s = 0
[[models]]
name = "demo"
[[models.backends]]
url = "{backend}"
"""


def resident_bytes(pid: int) -> int:
    """The process's resident set size (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


@pytest.fixture
def served(front_sim: Any, tmp_path: Path) -> Iterator[ServedGateway]:
    if not Path("/proc/self/status").exists():
        pytest.skip("resident memory is read from Linux /proc")
    config = tmp_path / "warmgate.toml"
    config.write_text(CONFIG.format(data_dir=tmp_path / "data", backend=front_sim.urls[0]))
    gateway = ServedGateway(config, environ={})
    yield gateway
    gateway.stop()


def _upload(url: str, body: bytes, path: str) -> int:
    content_type = "multipart/form-data; boundary=x" if "audio" in path else "application/json"
    try:
        answer = httpx.post(url + path, content=body, headers={"Content-Type": content_type})
    except httpx.TransportError:
        return 0  # closed while still sending: the body was refused unread all the same
    return answer.status_code


@pytest.mark.parametrize("path", ["/v1/audio/transcriptions", "/v1/chat/completions"])
def test_twenty_unauthenticated_25_mb_uploads_grow_memory_by_less_than_20_mb(
    served: ServedGateway, path: str
) -> None:
    body = b"x" * UPLOAD_BYTES
    with httpx.Client() as warm:  # the first request's imports and caches are not the test's
        warm.get(served.root + "/health")
    before = resident_bytes(served.pid)
    with concurrent.futures.ThreadPoolExecutor(UPLOADS) as pool:
        statuses = list(pool.map(lambda _: _upload(served.root, body, path), range(UPLOADS)))
    after = resident_bytes(served.pid)
    assert set(statuses) <= {401, 0}
    assert statuses.count(401) >= UPLOADS // 2
    assert after - before < MAX_GROWTH_BYTES, f"grew {(after - before) / 2**20:.1f} MB"
