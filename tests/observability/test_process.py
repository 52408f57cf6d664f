"""The process collector reads /proc as proc(5) lays it out."""

from __future__ import annotations

import os
import resource
from pathlib import Path

from warmgate.proxy.observability.process import ProcessCollector

TICKS = os.sysconf("SC_CLK_TCK")


def test_cpu_memory_and_descriptors_come_from_the_right_fields(tmp_path: Path) -> None:
    # pid (comm with a ") " inside) state ppid ... utime=250 stime=50 ... starttime vsize rss
    fields = ["S", "1", "1", "1", "0", "-1", "0", "0", "0", "0", "0"]
    fields += [str(2 * TICKS + TICKS // 2), str(TICKS // 2), "0", "0", "20", "0", "3", "0"]
    fields += [str(10 * TICKS), "123456789", "2500"]
    (tmp_path / "stat").write_text("4242 (odd) name) " + " ".join(fields) + " 0 0\n")
    (tmp_path / "fd").mkdir()
    for fd in range(7):
        (tmp_path / "fd" / str(fd)).touch()
    families = {family.name: family for family in ProcessCollector(tmp_path)()}
    assert families["process_cpu_seconds_total"].samples[0].value == 3.0
    assert families["process_cpu_seconds_total"].type == "counter"
    assert families["process_virtual_memory_bytes"].samples[0].value == 123456789
    rss = families["process_resident_memory_bytes"].samples[0].value
    assert rss == 2500 * resource.getpagesize()
    assert families["process_open_fds"].samples[0].value == 7
    assert families["process_max_fds"].samples[0].value > 0
    assert "process_start_time_seconds" in families
    collections = families["python_gc_collections_total"].samples
    assert [dict(s.labels)["generation"] for s in collections] == ["0", "1", "2"]


def test_without_proc_only_the_cpu_time_is_reported(tmp_path: Path) -> None:
    families = {family.name: family for family in ProcessCollector(tmp_path / "none")()}
    assert families["process_cpu_seconds_total"].samples[0].value > 0
    assert "process_resident_memory_bytes" not in families
    assert "process_open_fds" not in families
