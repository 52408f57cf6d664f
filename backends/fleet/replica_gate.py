"""The gate in front of SGLang on a replica: only callers holding the edges' key get through.

Every model task in `sky/models/` carries this file verbatim and runs it next to SGLang, which
listens on 127.0.0.1 only, with a key of its own made up at start. The gate listens on the
task's public port (the one `resources.ports` opens) and:

- forwards a request that bears `Authorization: Bearer <SGLANG_API_KEY>` to SGLang with
  SGLang's own key in its place, and streams the answer back as it comes; a caller that goes
  away closes the upstream connection, so SGLang aborts the request;
- answers `GET /health` without a key from its own recent check of SGLang's `/health`: 200 or
  503 and nothing more. SkyServe's readiness probe and `fleet sync --watch` cannot carry a
  secret; SGLang answers `/health`, `/health_generate`, `/ready` and `/metrics` to anyone, and
  its `/health` runs a generation. At most one check per `GATE_HEALTH_CACHE_S` reaches SGLang;
- refuses everything else with SGLang's own 401 body; with `ALLOWED_SOURCES` (comma-separated
  networks, e.g. the edges' addresses) it also refuses, with 403, callers from elsewhere.

It needs only the standard library and aiohttp, which SGLang itself depends on, and imports
nothing of Warmgate's: it runs on the replica, where Warmgate is not installed.

    SGLANG_API_KEY=... SGLANG_LOCAL_KEY=... python3 replica_gate.py
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

# SGLang's answers to a missing or wrong key and to a refused caller (srt/utils/auth.py).
UNAUTHORIZED = b'{"error":"Unauthorized"}'
FORBIDDEN = b'{"error":"Forbidden"}'
NOT_ANSWERING = b'{"error":"SGLang is not answering"}'
READINESS_PATH = "/health"
# Headers that belong to one connection (RFC 9110 section 7.6.1), or that aiohttp writes.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"}
    | {"upgrade", "host", "content-length"}
)
SGLANG_HEALTH_TIMEOUT_S = 20.0  # SGLang's own SGLANG_HEALTH_CHECK_TIMEOUT
SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class GateConfig:
    key: str  # what callers must present (the edges hold it)
    upstream_url: str  # SGLang on loopback
    upstream_key: str  # what SGLang was started with
    allowed_sources: tuple[Network, ...] = ()  # empty: any address
    health_cache_s: float = 5.0
    health_timeout_s: float = SGLANG_HEALTH_TIMEOUT_S

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> GateConfig:
        sources = [s.strip() for s in environ.get("ALLOWED_SOURCES", "").split(",") if s.strip()]
        return cls(
            key=environ["SGLANG_API_KEY"],
            upstream_url=f"http://127.0.0.1:{environ.get('SGLANG_LOCAL_PORT', '30001')}",
            upstream_key=environ["SGLANG_LOCAL_KEY"],
            allowed_sources=tuple(ipaddress.ip_network(s, strict=False) for s in sources),
            health_cache_s=float(environ.get("GATE_HEALTH_CACHE_S", "5")),
        )


class Gate:
    def __init__(self, config: GateConfig, clock: Callable[[], float] = time.monotonic) -> None:
        if not config.key or not config.upstream_key:
            raise ValueError("the gate needs both keys: it never runs open")
        self.config = config
        self._key = config.key.encode()
        self._clock = clock
        self._health_lock = asyncio.Lock()
        self._healthy = False
        self._checked_at = float("-inf")
        self.health_checks = 0  # checks of SGLang's /health made so far

    def app(self) -> web.Application:
        app = web.Application()  # bodies stream through (never read whole, so never capped)
        app.cleanup_ctx.append(self._session)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def _session(self, app: web.Application) -> AsyncIterator[None]:
        # No timeout on the whole request (a long generation) and no decompression: the bytes
        # go through as SGLang wrote them.
        timeout = aiohttp.ClientTimeout(total=None, connect=5.0)
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
            app[SESSION] = session
            yield

    async def handle(self, request: web.Request) -> web.StreamResponse:
        readiness = request.method == "GET" and request.path == READINESS_PATH
        if not readiness and not self._source_allowed(request.remote):
            return web.Response(status=403, body=FORBIDDEN, content_type="application/json")
        if self._authorized(request.headers.get("Authorization", "")):
            return await self._forward(request)
        if readiness:
            return web.Response(status=200 if await self._ready(request.app) else 503)
        return web.Response(status=401, body=UNAUTHORIZED, content_type="application/json")

    def _authorized(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), self._key)

    def _source_allowed(self, remote: str | None) -> bool:
        if not self.config.allowed_sources:
            return True
        try:
            address = ipaddress.ip_address(remote or "")
        except ValueError:
            return False
        return any(address in network for network in self.config.allowed_sources)

    async def _ready(self, app: web.Application) -> bool:
        """SGLang's `/health` as last seen, checked again once the cached answer is older than
        `health_cache_s`; callers arriving during a check share it."""
        async with self._health_lock:
            if self._clock() - self._checked_at >= self.config.health_cache_s:
                self._healthy = await self._check(app[SESSION])
                self._checked_at = self._clock()
        return self._healthy

    async def _check(self, session: aiohttp.ClientSession) -> bool:
        self.health_checks += 1
        try:
            async with session.get(
                self.config.upstream_url + READINESS_PATH,
                headers={"Authorization": f"Bearer {self.config.upstream_key}"},
                timeout=aiohttp.ClientTimeout(total=self.config.health_timeout_s),
            ) as answer:
                return answer.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        headers = CIMultiDict(
            (name, value)
            for name, value in request.headers.items()
            if name.lower() not in HOP_BY_HOP
        )
        headers["Authorization"] = f"Bearer {self.config.upstream_key}"
        if request.content_length is not None:
            headers["Content-Length"] = str(request.content_length)
        response: web.StreamResponse | None = None
        try:
            async with request.app[SESSION].request(
                request.method,
                self.config.upstream_url + request.rel_url.raw_path_qs,
                headers=headers,
                data=request.content if request.body_exists else None,
                allow_redirects=False,
            ) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for name, value in upstream.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        response.headers.add(name, value)
                if upstream.content_length is not None:
                    response.content_length = upstream.content_length
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        except aiohttp.ClientConnectionError:
            if response is not None:
                raise  # cut mid-answer (SGLang died, or the caller went away): cut it here too
            # SGLang is down or restarting: 503 is what an edge retries on another replica.
            return web.Response(status=503, body=NOT_ANSWERING, content_type="application/json")


async def serve(gate: Gate, sock: socket.socket) -> None:
    """Serve on `sock` until cancelled; announces the address once it accepts connections."""
    runner = web.AppRunner(gate.app(), access_log=None, handler_cancellation=True)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        host, port = sock.getsockname()[:2]
        print(f"replica gate: listening on {host}:{port}", flush=True)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def listen(host: str, port: int) -> socket.socket:
    sock = socket.create_server((host, port), reuse_port=False)
    sock.setblocking(False)
    return sock


def main() -> None:
    config = GateConfig.from_environ(os.environ)
    host = os.environ.get("GATE_HOST", "0.0.0.0")  # noqa: S104 - the replica's public port
    sock = listen(host, int(os.environ.get("GATE_PORT", "30000")))
    asyncio.run(serve(Gate(config), sock))


if __name__ == "__main__":
    main()
