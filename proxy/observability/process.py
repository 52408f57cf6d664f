"""The process's own figures at scrape time: CPU, memory, file descriptors and the collector.

Named as prometheus-client's process and GC collectors name them, so that dashboards made for
any Python service read them. Linux gives everything through /proc; elsewhere the CPU time
comes from `resource` where there is one (not on Windows), and the rest is left out rather
than guessed.
"""

from __future__ import annotations

import gc
import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from warmgate.proxy.observability.metrics import Family, Sample


def _resource_module() -> ModuleType | None:
    try:
        return importlib.import_module("resource")
    except ImportError:  # Windows
        return None


_PROC = Path("/proc/self")
_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_RESOURCE = _resource_module()
_PAGE_BYTES = _RESOURCE.getpagesize() if _RESOURCE is not None else 4096


class ProcessCollector:
    """A collector (`Metrics.add_collector`) of this process's figures. CPU time and GC counts
    are counters (summed over the workers of an edge); memory, descriptors and the start time
    are gauges kept per worker."""

    def __init__(self, proc: Path = _PROC) -> None:
        self._proc = proc
        self._boot_time_s = _boot_time_s()

    def __call__(self) -> Iterator[Family]:
        yield from self._cpu_and_memory()
        yield from self._descriptors()
        yield from _gc_families()

    def _cpu_and_memory(self) -> Iterator[Family]:
        try:
            stat = (self._proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            if _RESOURCE is not None:
                usage = _RESOURCE.getrusage(_RESOURCE.RUSAGE_SELF)
                cpu = usage.ru_utime + usage.ru_stime
                yield _counter("process_cpu_seconds_total", _CPU_HELP, cpu)
            return
        # Fields after the command name, from `state` (field 3 of proc(5)) on.
        cpu_s = (int(stat[11]) + int(stat[12])) / _TICKS_PER_S
        yield _counter("process_cpu_seconds_total", _CPU_HELP, cpu_s)
        yield _gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", int(stat[20]))
        yield _gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            int(stat[21]) * _PAGE_BYTES,
        )
        if self._boot_time_s is not None:
            yield _gauge(
                "process_start_time_seconds",
                "Start time of the process since the unix epoch in seconds.",
                self._boot_time_s + int(stat[19]) / _TICKS_PER_S,
            )

    def _descriptors(self) -> Iterator[Family]:
        try:
            open_fds = len(os.listdir(self._proc / "fd"))
        except OSError:
            return
        yield _gauge("process_open_fds", "Number of open file descriptors.", open_fds)
        if _RESOURCE is not None:
            soft, _ = _RESOURCE.getrlimit(_RESOURCE.RLIMIT_NOFILE)
            yield _gauge("process_max_fds", "Maximum number of open file descriptors.", soft)


_CPU_HELP = "Total user and system CPU time spent in seconds."


def _gc_families() -> Iterator[Family]:
    stats = gc.get_stats()
    for name, field, help_text in (
        ("python_gc_objects_collected_total", "collected", "Objects collected during gc."),
        (
            "python_gc_objects_uncollectable_total",
            "uncollectable",
            "Uncollectable objects found during gc.",
        ),
        ("python_gc_collections_total", "collections", "Times this generation was collected."),
    ):
        samples = [
            Sample((("generation", str(generation)),), float(stat[field]))
            for generation, stat in enumerate(stats)
        ]
        yield Family(name, help_text, "counter", samples)


def _counter(name: str, help_text: str, value: float) -> Family:
    return Family(name, help_text, "counter", [Sample((), float(value))])


def _gauge(name: str, help_text: str, value: float) -> Family:
    return Family(name, help_text, "gauge", [Sample((), float(value))])


def _boot_time_s() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None
