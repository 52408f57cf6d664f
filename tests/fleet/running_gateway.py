"""A gateway on a real loopback port, serving from the test's own event loop and routing to the
backends of a document `fleet sync` writes.

Health probes run only when told (a new backend is probed when it joins: `reload`), so nothing
waits on a poll interval: `reload` does what the document watcher and the health checker would
do on their next rounds.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import openai
import uvicorn

from tests.support.gateway import uvicorn_config
from warmgate.proxy.http.app import create_app
from warmgate.proxy.http.server import base_url, bind
from warmgate.proxy.settings import parse_settings

USER_KEY_ENV = "WG_FLEET_TEST_KEY"
USER_KEY = "wg-test-" + "f" * 40


class Gateway:
    def __init__(
        self,
        document: Path,
        data_dir: Path,
        environ: Mapping[str, str],
        *,
        model: str = "qwen3-32b",
        policy: str = "cache_aware",
    ) -> None:
        settings = parse_settings(
            {
                "data_dir": str(data_dir),
                "health": {"interval_s": 3600},
                "routing": {
                    "backends_document": str(document),
                    "document_poll_interval_s": 3600,
                    "load_poll_interval_s": 0,
                },
                "models": [{"name": model, "price_per_request": "0.002", "policy": policy}],
                "keys": [{"name": "fleet-test", "secret_env": USER_KEY_ENV}],
            }
        )
        self.log = io.BytesIO()
        self.app = create_app(
            settings, environ={**environ, USER_KEY_ENV: USER_KEY}, log_sink=self.log
        )
        self.sock = bind("127.0.0.1", 0)
        self.base_url = base_url(self.sock)
        self.server = uvicorn.Server(uvicorn_config(self.app))
        self._serving: asyncio.Task[None] | None = None

    @property
    def pool(self) -> Any:
        return self.app.state.runtime.pool

    def client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=USER_KEY, max_retries=0)

    async def reload(self) -> bool:
        """What the watcher does on its next poll; then probe, as a new backend is probed."""
        applied: bool = await self.pool.document.check()
        if self.pool.health is not None:
            await self.pool.health.probe_all()
        return applied

    def routable_urls(self) -> set[str]:
        return {view["url"] for view in self.pool.describe() if view["routable"]}

    async def __aenter__(self) -> Gateway:
        """Serve, and return once the app has started (its pool loaded the document): the
        socket is bound already, so the first request waits in the backlog until then."""
        self._serving = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        async with httpx.AsyncClient() as http:
            (await http.get(self.base_url.removesuffix("/v1") + "/health")).raise_for_status()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        if self._serving is not None:
            await self._serving
        self.sock.close()
