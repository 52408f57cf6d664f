"""A backend: one SGLang replica serving one model, and what can happen to a request on it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Outcome(enum.Enum):
    """How a request ended at its backend, as the request pipeline saw it."""

    OK = "ok"
    CONNECT_FAILED = "connect_failed"  # refused or reset before the request was sent
    UNAVAILABLE = "unavailable"  # 503: starting, draining or queue full
    SERVER_ERROR = "server_error"  # another 5xx, or a rejected backend key
    TIMEOUT_BEFORE_FIRST_BYTE = "timeout_before_first_byte"
    CANCELLED = "cancelled"  # the client went away: says nothing about the backend
    STREAM_CUT = "stream_cut"  # the backend broke a stream that had started

    def __init__(self, value: str) -> None:
        # Whether the outcome counts against the backend's circuit breaker: an attribute, read
        # per request (a property built a set of two members and hashed one each time).
        self.is_failure = value not in ("ok", "cancelled")


def backend_id(model: str, url: str) -> str:
    """A stable, readable id: the model and the address, never the key."""
    return f"{model}@{normalize_url(url)}"


def normalize_url(url: str) -> str:
    return url.strip().rstrip("/")


@dataclass(frozen=True, slots=True, eq=False)
class Backend:
    """An immutable description of one replica. Its key never appears in a repr."""

    id: str
    model: str
    url: str
    served_name: str
    api_key: str | None = field(default=None, repr=False)
    cloud: str | None = None
    region: str | None = None
    accelerators: str | None = None
    source: str = "config"
    service: str | None = None  # the SkyServe service the replica belongs to

    def describe(self) -> dict[str, str | None]:
        """The public fields, for the admin view and logs."""
        return {
            "id": self.id,
            "model": self.model,
            "url": self.url,
            "served_name": self.served_name,
            "cloud": self.cloud,
            "region": self.region,
            "accelerators": self.accelerators,
            "source": self.source,
            "service": self.service,
        }
