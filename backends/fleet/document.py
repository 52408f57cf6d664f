"""The backends document: the versioned JSON `fleet sync` writes and edges hot-reload.

    {"version": 3, "generated_at": "2026-11-28T12:00:00Z",
     "backends": [{"model": "qwen3-32b", "url": "http://203.0.113.7:30000",
                   "api_key_env": "SGLANG_API_KEY", "cloud": "Lambda", "region": "us-east-1",
                   "accelerators": "H100:2", "service": "wg-qwen3-32b-us-east-1",
                   "source": "sky-serve:wg-qwen3-32b-us-east-1/1"}],
     "controllers": {"wg-qwen3-32b-us-east-1": "http://198.51.100.1:20001"}}

Never a secret: `api_key_env` names the environment variable that holds that backend's key on
the edge (replicas launched with another key name another variable, which is how a key is
rotated). `service` names the SkyServe service a replica belongs to and `controllers` maps each
service to its controller, where edges report the requests they send it (SkyServe's load-balancer
sync), so that SkyServe's autoscaler counts traffic that never passes its load balancer.
The version goes up by one whenever the set of backends changes, and an unchanged
set is not rewritten, so edges reload only on a real change. Writes are atomic (a temporary
file in the same directory, flushed, then renamed over the old one): an edge never reads half
a document.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import msgspec


class DocumentError(Exception):
    """An existing document cannot be read back."""


class FleetBackend(msgspec.Struct, frozen=True, kw_only=True, order=True):
    model: str
    url: str
    api_key_env: str | None
    cloud: str | None
    region: str | None
    accelerators: str | None
    # Where it came from: `sky-cluster:<cluster>` or `sky-serve:<service>/<replica id>`.
    source: str
    # The SkyServe service of a replica (None for a plain cluster).
    service: str | None = None


class FleetDocument(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    generated_at: str
    backends: tuple[FleetBackend, ...]
    # SkyServe service -> its controller's URL (the load-balancer sync endpoint's base).
    controllers: dict[str, str] = {}


_encoder = msgspec.json.Encoder(order="deterministic")
_decoder = msgspec.json.Decoder(FleetDocument)


def encode_document(document: FleetDocument) -> bytes:
    return msgspec.json.format(_encoder.encode(document), indent=2) + b"\n"


def decode_document(data: bytes) -> FleetDocument:
    return _decoder.decode(data)


def read_document(path: Path) -> FleetDocument | None:
    """The document at `path`, or None when there is none yet."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return decode_document(data)
    except msgspec.DecodeError as exc:
        raise DocumentError(f"{path}: {exc}") from exc


def next_document(
    previous: FleetDocument | None,
    backends: list[FleetBackend],
    now: datetime,
    controllers: dict[str, str] | None = None,
) -> FleetDocument | None:
    """The document to write for `backends`, or None when `previous` already says the same."""
    ordered = tuple(sorted(set(backends)))
    controllers = dict(sorted((controllers or {}).items()))
    if previous is not None and (previous.backends, previous.controllers) == (
        ordered,
        controllers,
    ):
        return None
    version = 1 if previous is None else previous.version + 1
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return FleetDocument(
        version=version, generated_at=stamp, backends=ordered, controllers=controllers
    )


def write_document(path: Path, document: FleetDocument) -> None:
    """Replace `path` atomically: readers see the old document or the new one, nothing between."""
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(encode_document(document))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
