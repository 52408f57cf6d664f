"""Where routing reports what happens to backends (ejected, readmitted, breaker, document).

The gateway passes its own request log (`proxy.logs.RequestLog` has both methods), so these
events land in the same JSON stream as the per-request lines; a pool used alone logs through
structlog's default configuration.
"""

from __future__ import annotations

from typing import Protocol

import structlog


class EventLog(Protocol):
    def event(self, name: str, **fields: object) -> None: ...
    def warning(self, name: str, **fields: object) -> None: ...


class StructlogEvents:
    """The fallback sink: structlog with whatever configuration the process has."""

    def __init__(self) -> None:
        self._log = structlog.get_logger("warmgate.routing")

    def event(self, name: str, **fields: object) -> None:
        self._log.info(name, **fields)

    def warning(self, name: str, **fields: object) -> None:
        self._log.warning(name, **fields)
