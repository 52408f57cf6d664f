"""The ledger's spool: every recorded row appended to a local file before its answer leaves.

A SIGKILL loses what only the process's memory held. So `append` writes each row with one
`os.write` on a file opened `O_APPEND`: once the call returns the bytes are the kernel's, and
they survive the process (not the machine: there is no fsync, which would cost a disk flush per
request). At the next start the rows of a spool nobody holds are read back and inserted again;
the inserts are idempotent on the request id, so rows already stored are not duplicated.

The spool is a directory of segment files, `<pid>-<n>.spool`. The writer `seal`s the current
segment when it takes a batch and `discard`s the sealed ones once a flush has stored every row
they hold. Each segment is locked (`flock`) by the process writing it, for as long as it lives;
`claim` takes the segments whose lock is free, those of a process that died, so that several
processes (workers, edges on one data directory) share one spool directory safely. A segment
is created under a temporary name, locked, then renamed: `claim` never sees it unlocked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import msgspec
import structlog

from warmgate.proxy.ledger.row import LedgerRow

SUFFIX = ".spool"

_log = structlog.get_logger("warmgate.ledger")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(LedgerRow).decode


class Segment:
    """One spool file, open and locked by this process."""

    __slots__ = ("bytes", "fd", "path")

    def __init__(self, path: Path, fd: int, size: int = 0) -> None:
        self.path = path
        self.fd = fd
        self.bytes = size

    def remove(self) -> None:
        """Delete the file, then let go of it (in that order: nobody can claim it between)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self.fd)

    def release(self) -> None:
        """Let go of the file and keep it, for the next process to claim."""
        os.close(self.fd)


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._current: Segment | None = None
        self._sealed: list[Segment] = []
        self._count = 0
        self._failing = False
        self.failures = 0  # appends the file system refused (the row stays in memory)

    # -- the request path --------------------------------------------------------------------

    def append(self, row: LedgerRow) -> bool:
        """One row, one `write`; False when it could not be written (a full disk: logged
        once, then counted). Never raises."""
        segment = self._current
        try:
            if segment is None:
                segment = self._current = self._create()
            data = _encode(row) + b"\n"
            written = os.write(segment.fd, data)
            segment.bytes += written
            if written != len(data):  # a short write: the file system is full
                raise OSError("short write")  # one path for every failure
        except OSError as exc:
            self.failures += 1
            if not self._failing:
                self._failing = True
                _log.error("ledger_spool_failed", error=type(exc).__name__, errno=exc.errno)
            return False
        if self._failing:
            self._failing = False
            _log.info("ledger_spool_recovered", failures=self.failures)
        return True

    # -- the writer ----------------------------------------------------------------------------

    def seal(self) -> None:
        """Close the current segment to new rows (when it holds any): the rows queued so far
        are in sealed segments, and `discard` may delete them once those rows are stored."""
        if self._current is not None and self._current.bytes:
            self._sealed.append(self._current)
            self._current = None

    @property
    def sealed(self) -> int:
        return len(self._sealed)

    def discard(self) -> None:
        """Delete the sealed segments: every row they hold is stored (or set aside)."""
        sealed, self._sealed = self._sealed, []
        for segment in sealed:
            segment.remove()

    def claim(self, max_rows: int) -> list[LedgerRow]:
        """The rows of segments no live process holds, whole segments until `max_rows` are
        read (the rest wait for a later claim); those segments become sealed segments of this
        spool, deleted by `discard` once the rows are stored."""
        self.directory.mkdir(parents=True, exist_ok=True)
        own = {segment.path for segment in self._segments()}
        rows: list[LedgerRow] = []
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            if path in own or len(rows) >= max_rows:
                continue
            segment = _lock(path)
            if segment is None:
                continue
            rows.extend(self._read(segment))
            self._sealed.append(segment)
        return rows

    def close(self, *, keep: bool) -> None:
        """Let go of every segment: deleted when every row is stored, else kept for the next
        process to claim."""
        segments = [*self._segments()]
        self._sealed, self._current = [], None
        for segment in segments:
            if keep and segment.bytes:
                segment.release()
            else:
                segment.remove()

    @property
    def bytes(self) -> int:
        return sum(segment.bytes for segment in self._segments())

    def _segments(self) -> Iterator[Segment]:
        yield from self._sealed
        if self._current is not None:
            yield self._current

    def _create(self) -> Segment:
        self._count += 1
        final = self.directory / f"{os.getpid()}-{self._count}{SUFFIX}"
        temporary = final.with_suffix(".new")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
        try:
            fd = os.open(temporary, flags, 0o600)
        except FileNotFoundError:
            # The directory is made when missing, not before every segment: under load the
            # writer seals a segment per flush, and pathlib's mkdir of an existing directory
            # (a failed syscall and an exception) took 1.6 % of the gateway's samples.
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(temporary, flags, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        temporary.rename(final)
        return Segment(final, fd)

    @staticmethod
    def _read(segment: Segment) -> list[LedgerRow]:
        with open(segment.fd, "rb", closefd=False) as file:  # an fd, not a path
            data = file.read()
        segment.bytes = len(data)
        rows: list[LedgerRow] = []
        unreadable = 0
        for line in data.splitlines():
            try:
                rows.append(_decode(line))
            except msgspec.DecodeError:  # a line cut short by a machine crash
                unreadable += 1
        if unreadable:
            _log.warning(
                "ledger_spool_unreadable_lines", segment=segment.path.name, lines=unreadable
            )
        return rows


def _lock(path: Path) -> Segment | None:
    """`path` opened and locked, or None when a live process holds it (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Deleted (or replaced) by its owner between our open and our lock: not ours to take.
        if os.fstat(fd).st_ino != path.stat().st_ino:
            raise FileNotFoundError(path)  # one path for both outcomes
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        return None
    return Segment(path, fd)
