"""What the last `fleet sync` pass did, kept next to the backends document for `fleet status`.

A pass that could not read SkyPilot (API server down, serve controller INIT or unreachable) or
that would have dropped too many backends at once leaves the document as it was; this record
says so, with the reason, until a pass succeeds again. Written atomically like the document.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import msgspec


class SyncState(msgspec.Struct, frozen=True, kw_only=True):
    checked_at: str
    # True when the document reflects SkyPilot as of `checked_at`.
    current: bool
    document_version: int | None
    backends: int
    # Why the document was kept as it was (None when `current`).
    problem: str | None = None


_encoder = msgspec.json.Encoder(order="deterministic")
_decoder = msgspec.json.Decoder(SyncState)


def state_path(document: Path) -> Path:
    """`backends.json` -> `backends.sync.json`, beside it."""
    return document.with_name(f"{document.stem}.sync.json")


def read_state(document: Path) -> SyncState | None:
    try:
        return _decoder.decode(state_path(document).read_bytes())
    except (FileNotFoundError, msgspec.DecodeError):
        return None


def write_state(document: Path, state: SyncState) -> None:
    path = state_path(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(_encoder.encode(state) + b"\n")
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
