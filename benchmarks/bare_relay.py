"""The baseline: a bare Litestar + msgspec + aiohttp-client relay, one uvicorn worker.

No auth, limits, routing or accounting: what any gateway on this stack costs at the least.

    python -m benchmarks.bare_relay --upstream http://127.0.0.1:30000 --port 8090
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Sequence

import aiohttp
import msgspec
import uvicorn
from litestar import Litestar, Request, post
from litestar.datastructures import State
from litestar.response import Response, Stream


class _Head(msgspec.Struct):
    stream: bool = False


_decode_head = msgspec.json.Decoder(_Head).decode


@post(["/v1/chat/completions", "/v1/completions"], status_code=200)
async def relay(request: Request[None, None, State], state: State) -> Response[bytes] | Stream:
    body = await request.body()
    stream = _decode_head(body).stream
    session: aiohttp.ClientSession = state.session
    upstream = await session.post(
        state.upstream + request.url.path, data=body, headers={"content-type": "application/json"}
    )
    if not stream:
        async with upstream:
            data = await upstream.read()
        return Response(data, status_code=upstream.status, media_type="application/json")

    async def chunks() -> AsyncIterator[bytes]:
        async with upstream:
            async for chunk in upstream.content.iter_any():
                yield chunk

    return Stream(chunks(), status_code=upstream.status, media_type="text/event-stream")


def create_app(upstream: str) -> Litestar:
    async def open_session(app: Litestar) -> None:
        connector = aiohttp.TCPConnector(limit=1024, keepalive_timeout=4.0)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5.0, sock_read=900.0)
        app.state.session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        app.state.upstream = upstream.rstrip("/")

    async def close_session(app: Litestar) -> None:
        await app.state.session.close()

    return Litestar([relay], on_startup=[open_session], on_shutdown=[close_session])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bare_relay")
    parser.add_argument("--upstream", default="http://127.0.0.1:30000")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.upstream),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
