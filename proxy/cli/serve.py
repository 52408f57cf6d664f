"""`warmgate serve`: the gateway, from a TOML file or on embedded defaults.

Without `--config` it runs on embedded defaults so a new user talks to it within a minute: an
in-process SGLang simulator serving model `demo`, SQLite state under the data directory, and an
API key kept there (created on first start) that is printed with a copy-paste SDK snippet.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from warmgate.proxy.http.app import create_app
from warmgate.proxy.http.server import base_url, bind, serve
from warmgate.proxy.keys import Key, generate_key_id, generate_secret, hash_secret, open_key_store
from warmgate.proxy.observability.logs import configure_logging
from warmgate.proxy.settings import (
    DEFAULT_DATA_DIR,
    EMBEDDED_MODEL,
    Settings,
    SettingsError,
    embedded_settings,
    load_settings,
)

KEY_FILE = "api-key"
EMBEDDED_KEY_NAME = "embedded-default"
# `scheme://user:password@`: shown as `scheme://***@` in any error line.
CREDENTIALS = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


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


def prepare(args: argparse.Namespace) -> Settings:
    """The settings from the file (or the embedded defaults) and the command line."""
    settings = load_settings(args.config) if args.config else embedded_settings([])
    given = {"host": args.host, "port": args.port, "data_dir": args.data_dir}
    overrides = {name: value for name, value in given.items() if value is not None}
    if overrides:
        settings = msgspec.structs.replace(settings, **overrides)
    try:
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(f"cannot create data_dir {settings.data_dir}: {exc}") from exc
    return settings


def fail(message: str, status: int) -> int:
    """Print one line (no traceback, no credentials) and give the exit status."""
    shown = CREDENTIALS.sub(r"\1***@", message)
    print(f"warmgate serve: {shown}", file=sys.stderr)
    return status


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    configure_logging()
    try:
        settings = prepare(args)
    except SettingsError as exc:
        return fail(str(exc), 2)
    try:
        sock = bind(settings.host, settings.port)
    except OSError as exc:
        return fail(f"cannot listen on {settings.host}:{settings.port}: {exc}", 1)
    stop_simulator: Callable[[], None] | None = None
    try:
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
            app = create_app(settings, on_started=on_started)
        except ValueError as exc:  # what the settings declare cannot be built
            return fail(f"{args.config or 'settings'}: {exc}", 2)
        failure = serve(app, sock)
        if failure is not None:
            return fail(f"cannot start: {failure}", 1)
    finally:
        sock.close()
        if stop_simulator is not None:
            stop_simulator()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
