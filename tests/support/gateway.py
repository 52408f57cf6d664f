"""The gateway app on a real loopback port, inside the test process.

`GatewayServer` runs uvicorn in a thread (for synchronous tests); `uvicorn_config` is the one
server configuration, also for harnesses that serve in the test's own event loop. The socket is
bound before the server starts, so a request made at once waits in the listen backlog until the
app is up: no polling, no sleeping.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import uvicorn
from litestar import Litestar

from warmgate.proxy.endpoints import ENDPOINTS, Endpoint
from warmgate.proxy.http.app import create_app
from warmgate.proxy.http.protocol import guarded_protocol
from warmgate.proxy.http.server import base_url, bind
from warmgate.proxy.settings import Settings


def uvicorn_config(app: Litestar) -> uvicorn.Config:
    """As `warmgate serve` runs it (uvloop, httptools with the request-head limits of the app's
    settings, no WebSocket support, so websockets is never loaded), with the app's own lifespan
    and no access log of uvicorn's."""
    return uvicorn.Config(
        app.state.entry,  # the hot lane in front of the app, as `warmgate serve` serves it
        loop="uvloop",
        http=guarded_protocol(app.state.runtime.settings.server),
        ws="none",
        lifespan="on",
        log_level="warning",
        access_log=False,
    )


class GatewayServer:
    def __init__(
        self,
        settings: Settings,
        *,
        environ: Mapping[str, str],
        endpoints: Sequence[Endpoint] = ENDPOINTS,
        span_exporter: Any = None,
    ) -> None:
        self.log = io.BytesIO()
        self.app = create_app(
            settings,
            environ=environ,
            log_sink=self.log,
            endpoints=endpoints,
            span_exporter=span_exporter,
        )
        self.sock = bind("127.0.0.1", 0)
        self.base_url = base_url(self.sock)
        self.root = self.base_url.removesuffix("/v1")
        self._server = uvicorn.Server(uvicorn_config(self.app))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    def start(self) -> GatewayServer:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Graceful shutdown: in-flight requests drain, the ledger is flushed."""
        self._server.should_exit = True
        self._thread.join(timeout=60)
        self.sock.close()
        assert not self._thread.is_alive(), "the gateway did not shut down"

    def log_lines(self) -> list[bytes]:
        return [line for line in self.log.getvalue().splitlines() if line]

    def request_line(self, request_id: str) -> dict[str, object]:
        """The request's own log line, once the log has been flushed."""
        for _ in range(2):
            for line in self.log_lines():
                record: dict[str, object] = json.loads(line)
                if record.get("request_id") == request_id and record.get("event") == "request":
                    return record
            self.runtime.log.flush()
        raise AssertionError(f"no log line for {request_id}")
