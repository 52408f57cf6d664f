"""`warmgate serve`: the gateway, from a TOML file or on embedded defaults.

Without `--config` it runs on embedded defaults so a new user talks to it within a minute: an
in-process SGLang simulator serving model `demo`, SQLite state under the data directory, and an
API key kept there (created on first start) that is printed with a copy-paste SDK snippet.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import structlog

from warmgate.proxy.cli import options
from warmgate.proxy.http.app import create_app
from warmgate.proxy.http.server import base_url, bind, describe, serve
from warmgate.proxy.http.workers import Supervisor, prepare_stores, worker_count
from warmgate.proxy.keys import Key, generate_key_id, generate_secret, hash_secret, open_key_store
from warmgate.proxy.observability.logs import configure_logging, log_level
from warmgate.proxy.settings import (
    DEFAULT_DATA_DIR,
    EMBEDDED_MODEL,
    Settings,
    SettingsError,
    embedded_settings,
    load_settings,
)

PROG = "warmgate serve"
_log = structlog.get_logger("warmgate.serve")
KEY_FILE = "api-key"
EMBEDDED_KEY_NAME = "embedded-default"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run the gateway. Without --config: a built-in simulator serving model "
        f"'{EMBEDDED_MODEL}', SQLite state under --data-dir, and a printed API key.",
    )
    parser.add_argument("--config", help="TOML settings file")
    parser.add_argument("--host", help="listen address (default: the file's, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default: the file's, else 8080)")
    parser.add_argument("--data-dir", help=f"state directory (default: {DEFAULT_DATA_DIR})")
    parser.add_argument(
        "--workers",
        type=int,
        help="processes serving the port, 0: one per CPU core (default: the file's, else 1)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="the least severe log line written (default: the file's, else info)",
    )
    return parser.parse_args(list(argv))


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
    sim: Any = importlib.import_module("warmgate.backends.sim")
    config = sim.SimConfig(model=EMBEDDED_MODEL, enable_metrics=True, enable_cache_report=True)
    cluster = sim.SimCluster(config, replicas=1).start_in_thread()
    return list(cluster.urls), cluster.stop


def prepare(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """The settings from the file (or the embedded defaults) and the command line."""
    settings = load_settings(args.config, environ) if args.config else embedded_settings([])
    given = {"host": args.host, "port": args.port, "data_dir": args.data_dir}
    overrides = {name: value for name, value in given.items() if value is not None}
    if overrides:
        settings = msgspec.structs.replace(settings, **overrides)
    server_overrides = {"log_level": args.log_level, "workers": args.workers}
    server_given = {name: value for name, value in server_overrides.items() if value is not None}
    if server_given:
        if server_given.get("workers", 0) < 0:
            raise SettingsError("--workers must be 0 (one per CPU core) or more")
        server = msgspec.structs.replace(settings.server, **server_given)
        settings = msgspec.structs.replace(settings, server=server)
    try:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(f"cannot create data_dir {settings.data_dir}: {exc}") from exc
    return settings


def serve_workers(
    settings: Settings, sock: socket.socket, workers: int, on_started: Callable[[], None]
) -> str | None:
    """The edge as `workers` processes (`proxy.http.workers`); why it stopped, if it failed.
    Its stores are prepared here, once, before the workers open them together."""
    try:
        asyncio.run(prepare_stores(settings))
    except Exception as exc:  # noqa: BLE001 - a store that cannot be opened ends as one line
        return describe(exc)
    if settings.limits.enabled and not settings.limits.redis_url:
        _log.warning(
            "limits_per_worker",
            workers=workers,
            detail="without [limits] redis_url each worker enforces its part of every limit",
        )
    return Supervisor(settings, sock, workers, on_started=on_started).run()


def fail(message: str, status: int) -> int:
    """Print one line (no traceback, no credentials) and give the exit status."""
    return options.fail(PROG, message, status)


def main(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = prepare(args, os.environ if environ is None else environ)
    except SettingsError as exc:
        return fail(str(exc), options.USAGE)
    configure_logging(log_level(settings.server.log_level))
    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        return fail(f"cannot listen on {settings.host}:{settings.port}: {exc}", options.RUNTIME)
    stop_simulator: Callable[[], None] | None = None
    try:
        url = base_url(sock)
        if args.config:
            message = f"Warmgate is serving on {url}"
        else:
            urls, stop_simulator = start_simulator()
            settings = embedded_settings(
                urls,
                host=settings.host,
                port=settings.port,
                data_dir=settings.data_dir,
                server=settings.server,
            )
            secret = asyncio.run(ensure_embedded_key(settings))
            message = banner(url, secret, EMBEDDED_MODEL)

        def on_started() -> None:
            print(message, flush=True)

        workers = worker_count(settings.server.workers)
        if workers > 1:
            failure = serve_workers(settings, sock, workers, on_started)
        else:
            try:
                app = create_app(settings, on_started=on_started)
            except ValueError as exc:  # what the settings declare cannot be built
                return fail(f"{args.config or 'settings'}: {exc}", options.USAGE)
            failure = serve(app, sock)
        if failure is not None:
            return fail(f"cannot start: {failure}", options.RUNTIME)
    finally:
        sock.close()
        if stop_simulator is not None:
            stop_simulator()
    return 0
