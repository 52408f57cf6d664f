"""`warmgate serve`: the gateway on uvicorn (uvloop + httptools), from a TOML file or embedded.

Without `--config` it runs on embedded defaults so a new user talks to it within a minute: an
in-process SGLang simulator serving model `demo`, SQLite state under the data directory, and an
API key kept there (created on first start) that is printed with a copy-paste SDK snippet.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import socket
import sys
import time
from collections.abc import Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import structlog
import uvicorn

from proxy.app import create_app
from proxy.keys import Key, generate_key_id, generate_secret, hash_secret, open_key_store
from proxy.settings import (
    DEFAULT_DATA_DIR,
    EMBEDDED_MODEL,
    Settings,
    SettingsError,
    embedded_settings,
    load_settings,
)

KEY_FILE = "api-key"
EMBEDDED_KEY_NAME = "embedded-default"
BACKLOG = 2048


def configure_logging() -> None:
    """JSON lines on stdout for every structlog logger of the process (health verdicts, key
    refreshes, ...), like the per-request lines. Process-wide, so done here, by the command."""
    encoder = msgspec.json.Encoder()

    def render(_: Any, __: str, event: MutableMapping[str, Any]) -> bytes:
        return encoder.encode(event)

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            render,
        ],
        logger_factory=structlog.BytesLoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="warmgate serve",
        description="Run the gateway. Without --config: a built-in simulator serving model "
        f"'{EMBEDDED_MODEL}', SQLite state under --data-dir, and a printed API key.",
    )
    parser.add_argument("--config", help="TOML settings file")
    parser.add_argument("--host", help="listen address (default: the file's, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default: the file's, else 8080)")
    parser.add_argument("--data-dir", help=f"state directory (default: {DEFAULT_DATA_DIR})")
    return parser.parse_args(list(argv))


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the server starts: connections made from now on
    wait in the backlog until the app is ready, so the printed URL is good at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


async def ensure_embedded_key(settings: Settings) -> str:
    """The embedded API key: read from the data directory, or created and stored there."""
    path = Path(settings.data_dir) / KEY_FILE
    secret = path.read_text(encoding="utf-8").strip() if path.exists() else ""
    store = open_key_store(settings.ledger_url)
    await store.start()
    try:
        known = {digest for digest, _ in await store.load()}
        if not secret or hash_secret(secret) not in known:
            secret = generate_secret()
            key = Key(id=generate_key_id(), name=EMBEDDED_KEY_NAME, created_at=time.time())
            await store.insert(key, hash_secret(secret))
            path.write_text(secret + "\n", encoding="utf-8")
            path.chmod(0o600)
    finally:
        await store.close()
    return secret


def banner(url: str, secret: str, model: str) -> str:
    return f"""
Warmgate is serving on {url}  (model '{model}' on a built-in SGLang simulator)
API key: {secret}

    from openai import OpenAI
    client = OpenAI(base_url="{url}", api_key="{secret}")
    reply = client.chat.completions.create(
        model="{model}", messages=[{{"role": "user", "content": "Hello!"}}]
    )
    print(reply.choices[0].message.content)
"""


def start_simulator() -> tuple[list[str], Callable[[], None]]:
    """The embedded backend: one simulated SGLang replica in a thread of this process. Imported
    only here, by the command, so the gateway itself never depends on the simulator."""
    sim: Any = importlib.import_module("backends.sim")
    config = sim.SimConfig(model=EMBEDDED_MODEL, enable_metrics=True, enable_cache_report=True)
    cluster = sim.SimCluster(config, replicas=1).start_in_thread()
    return list(cluster.urls), cluster.stop


def serve(settings: Settings, sock: socket.socket, *, on_started: Callable[[], None]) -> None:
    app = create_app(settings, on_started=on_started)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,  # the gateway writes its own line per request
        log_level="warning",
        backlog=BACKLOG,
    )
    uvicorn.Server(config).run(sockets=[sock])


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    configure_logging()
    stop_simulator: Callable[[], None] | None = None
    try:
        settings = load_settings(args.config) if args.config else embedded_settings([])
        given = {"host": args.host, "port": args.port, "data_dir": args.data_dir}
        overrides = {name: value for name, value in given.items() if value is not None}
        if overrides:
            settings = msgspec.structs.replace(settings, **overrides)
    except SettingsError as exc:
        print(f"warmgate serve: {exc}", file=sys.stderr)
        return 2
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        print(
            f"warmgate serve: cannot listen on {settings.host}:{settings.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    url = base_url(sock)
    if args.config:
        message = f"Warmgate is serving on {url}"
    else:
        urls, stop_simulator = start_simulator()
        settings = embedded_settings(
            urls, host=settings.host, port=settings.port, data_dir=settings.data_dir
        )
        secret = asyncio.run(ensure_embedded_key(settings))
        message = banner(url, secret, EMBEDDED_MODEL)

    def on_started() -> None:
        print(message, flush=True)

    try:
        serve(settings, sock, on_started=on_started)
    finally:
        sock.close()
        if stop_simulator is not None:
            stop_simulator()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
