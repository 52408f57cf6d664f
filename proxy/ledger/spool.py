"""The ledger's spool: every recorded row written to a local file before its answer leaves.

A SIGKILL loses what only the process's memory held. So `append` copies each row into a
segment file mapped into memory (`mmap`, shared): once copied, the bytes are in the kernel's
page cache and survive the process (not the machine: there is no fsync, which would cost a disk
flush per request). A mapped file takes a row without a system call; an `os.write` per row cost
the gateway 3 to 6 % of its CPU per request (a system call, and the GIL given up around it).
Each segment's blocks are reserved when it is made (`posix_fallocate`, or zeros written where
there is none): a full disk refuses a new segment, where a page of a sparse file would have
killed the process (SIGBUS) when first written. At the next start the rows of a spool nobody
holds are read back and inserted again; the inserts are idempotent on the request id, so rows
already stored are not duplicated.

The spool is a directory of segment files, `<pid>-<n>.spool`: JSON lines, then zeros up to the
segment's size (JSON has no raw NUL byte, so the first one ends the rows; a row cut short by a
crash is a line that does not decode). The writer `seal`s the current segment when it takes a
batch and `discard`s the sealed ones once a flush has stored every row they hold; a segment
that fills up before that is sealed with it. Each segment is locked (`flock`) by the process
writing it, for as long as it lives; `claim` takes the segments whose lock is free, those of a
process that died, so that several processes (workers, edges on one data directory) share one
spool directory safely. A segment is created under a temporary name, locked, then renamed:
`claim` never sees it unlocked.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import msgspec
import structlog

from warmgate.proxy.ledger.row import LedgerRow

SUFFIX = ".spool"
# A segment holds about 100 ms of rows at several thousand requests a second; a row that does
# not fit starts the next one.
SEGMENT_BYTES = 1 << 20

_log = structlog.get_logger("warmgate.ledger")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(LedgerRow).decode


class Segment:
    """One spool file, open and locked by this process; `view` maps it while rows are added."""

    __slots__ = ("bytes", "fd", "path", "view")

    def __init__(self, path: Path, fd: int, size: int = 0, view: mmap.mmap | None = None) -> None:
        self.path = path
        self.fd = fd
        self.bytes = size  # of rows: where the next one goes
        self.view = view

    def remove(self) -> None:
        """Delete the file, then let go of it (in that order: nobody can claim it between)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.release()

    def release(self) -> None:
        """Let go of the file and keep it, for the next process to claim."""
        if self.view is not None:
            self.view.close()
            self.view = None
        os.close(self.fd)


def segment_rows(data: bytes) -> tuple[list[LedgerRow], int]:
    """The rows a segment file holds, and how many lines did not decode (cut short)."""
    end = data.find(b"\0")
    rows: list[LedgerRow] = []
    unreadable = 0
    for line in (data if end == -1 else data[:end]).splitlines():
        try:
            rows.append(_decode(line))
        except msgspec.DecodeError:  # a line cut short by a crash
            unreadable += 1
    return rows, unreadable


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._current: Segment | None = None
        self._filled: list[Segment] = []  # full before the writer took their rows
        self._sealed: list[Segment] = []
        self._count = 0
        self._failing = False
        self.failures = 0  # appends the file system refused (the row stays in memory)

    # -- the request path --------------------------------------------------------------------

    def append(self, row: LedgerRow) -> bool:
        """One row, copied into the current segment; False when it could not be written (a
        full disk: logged once, then counted). Never raises."""
        data = _encode(row) + b"\n"
        segment = self._current
        try:
            if segment is None or segment.bytes + len(data) > SEGMENT_BYTES:
                segment = self._next_segment(len(data))
            end = segment.bytes + len(data)
            segment.view[segment.bytes : end] = data  # type: ignore[index]  # mapped while current
            segment.bytes = end
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

    def _next_segment(self, row_bytes: int) -> Segment:
        """A new current segment; a full one waits among the filled, sealed with the next
        `seal` (its rows are queued)."""
        if row_bytes > SEGMENT_BYTES:
            raise OSError(0, "a ledger row larger than a spool segment")
        if self._current is not None:
            self._filled.append(self._current)
            self._current = None
        self._current = self._create()
        return self._current

    # -- the writer ----------------------------------------------------------------------------

    def seal(self) -> None:
        """Close the current segment to new rows (when it holds any): the rows queued so far
        are in sealed segments, and `discard` may delete them once those rows are stored."""
        self._sealed += self._filled
        self._filled = []
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
        self._sealed, self._filled, self._current = [], [], None
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
        yield from self._filled
        if self._current is not None:
            yield self._current

    def _create(self) -> Segment:
        self._count += 1
        final = self.directory / f"{os.getpid()}-{self._count}{SUFFIX}"
        temporary = final.with_suffix(".new")
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        try:
            fd = os.open(temporary, flags, 0o600)
        except FileNotFoundError:
            # The directory is made when missing, not before every segment: under load the
            # writer seals a segment per flush, and pathlib's mkdir of an existing directory
            # (a failed syscall and an exception) took 1.6 % of the gateway's samples.
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(temporary, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _reserve(fd)  # ENOSPC here, never SIGBUS later
            view = mmap.mmap(fd, SEGMENT_BYTES)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        temporary.rename(final)
        return Segment(final, fd, view=view)

    @staticmethod
    def _read(segment: Segment) -> list[LedgerRow]:
        with open(segment.fd, "rb", closefd=False) as file:  # an fd, not a path
            data = file.read()
        rows, unreadable = segment_rows(data)
        end = data.find(b"\0")
        segment.bytes = len(data) if end == -1 else end
        if unreadable:
            _log.warning(
                "ledger_spool_unreadable_lines", segment=segment.path.name, lines=unreadable
            )
        return rows


def _reserve(fd: int) -> None:
    """The segment's blocks, allocated now, so that writing its pages cannot fail later."""
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, 0, SEGMENT_BYTES)
    else:  # macOS has none: zeros written once allocate the blocks all the same
        os.pwrite(fd, bytes(SEGMENT_BYTES), 0)


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
