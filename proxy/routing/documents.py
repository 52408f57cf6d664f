"""The backends document: the JSON `warmgate fleet sync` writes, and its hot-reload watcher.

    {"version": 7, "backends": [{"model": "llama-70b", "url": "http://10.0.0.5:30000",
      "api_key_env": "SGLANG_KEY", "cloud": "aws", "region": "us-east-1",
      "accelerators": "H100:8", "source": "skyserve:llama", "service": "wg-llama-us-east-1"}],
     "controllers": {"wg-llama-us-east-1": "http://10.0.0.2:20001"}}

The watcher checks the file's modification time and size every `interval_s` and applies a
changed document to the pool; a document that fails to decode is logged and ignored, so the
pool keeps the last good one. `controllers` maps each SkyServe service to the controller that
the edge reports its requests to (`proxy.routing.controller_report`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence

import msgspec

from warmgate.proxy.routing.catalog import BackendSpec
from warmgate.proxy.routing.events import EventLog, StructlogEvents


class DocumentBackend(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    url: str
    api_key_env: str | None = None
    cloud: str | None = None
    region: str | None = None
    accelerators: str | list[str] | dict[str, int] | None = None
    source: str | None = None
    service: str | None = None


class BackendsDocument(msgspec.Struct, frozen=True, kw_only=True):
    version: int | str
    backends: list[DocumentBackend] = []
    controllers: dict[str, str] = {}


_decode = msgspec.json.Decoder(BackendsDocument).decode


def decode_document(data: bytes) -> BackendsDocument:
    """Decode a document; msgspec.ValidationError/DecodeError name the offending path."""
    return _decode(data)


def _accelerators(value: str | list[str] | dict[str, int] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return ",".join(f"{name}:{count}" for name, count in value.items())
    return ",".join(value)


def document_specs(document: BackendsDocument) -> list[BackendSpec]:
    return [
        BackendSpec(
            model=b.model,
            url=b.url,
            api_key_env=b.api_key_env,
            cloud=b.cloud,
            region=b.region,
            accelerators=_accelerators(b.accelerators),
            source=b.source or "document",
            service=b.service,
        )
        for b in document.backends
    ]


class DocumentWatcher:
    def __init__(
        self,
        path: str | os.PathLike[str],
        apply: Callable[[Sequence[BackendSpec]], object],
        *,
        interval_s: float,
        events: EventLog | None = None,
        on_controllers: Callable[[Mapping[str, str]], object] | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self._events: EventLog = events or StructlogEvents()
        self._apply = apply
        self._on_controllers = on_controllers
        self._interval_s = interval_s
        self._seen: tuple[int, int, int] | None = None
        self.version: int | str | None = None
        self.error: str | None = None
        self.loads = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.check()

    async def check(self) -> bool:
        """Apply the document if it changed since the last check; True when applied."""
        try:
            stat = await asyncio.to_thread(os.stat, self.path)
        except FileNotFoundError:
            self.error = "missing"
            return False
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if signature == self._seen:
            return False
        self._seen = signature
        try:
            data = await asyncio.to_thread(self._read)
            document = decode_document(data)
        except (OSError, msgspec.DecodeError) as exc:
            self.error = str(exc)
            self._events.warning("backends_document_invalid", path=self.path, error=self.error)
            return False
        self.error = None
        self.version = document.version
        self.loads += 1
        self._apply(document_specs(document))
        if self._on_controllers is not None:
            self._on_controllers(document.controllers)
        self._events.event("backends_document_loaded", path=self.path, version=document.version)
        return True

    def _read(self) -> bytes:
        with open(self.path, "rb") as handle:
            return handle.read()
