"""`warmgate serve` as a real child process, for signal and multi-edge tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tests.billing.edge import ADMIN_KEY, PRICE

BANNER = "Warmgate is serving on "


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(
    path: Path,
    *,
    data_dir: Path,
    ledger_url: str,
    backend_urls: list[str],
    keys: list[dict[str, Any]],
    redis_url: str | None = None,
    flush_interval_ms: int = 100,
) -> Path:
    lines = [
        'host = "127.0.0.1"',
        "port = 0",
        f"data_dir = {toml_value(str(data_dir))}",
        "[health]",
        "interval_s = 3600.0",
        'probe_path = "/health"',
        "[routing]",
        "load_poll_interval_s = 0.0",
        'policy = "round_robin"',
        "[upstream]",
        "max_attempts = 1",
        "[auth]",
        'admin_key_env = "WG_ADMIN_KEY"',
        "[ledger]",
        f"url = {toml_value(ledger_url)}",
        f"flush_interval_ms = {flush_interval_ms}",
    ]
    if redis_url:
        lines += ["[limits]", f"redis_url = {toml_value(redis_url)}"]
    lines += [
        "[[models]]",
        'name = "demo"',
        f"price_per_request = {toml_value(PRICE)}",
    ]
    for url in backend_urls:
        lines += ["[[models.backends]]", f"url = {toml_value(url)}"]
    for key in keys:
        lines.append("[[keys]]")
        lines += [f"{name} = {toml_value(value)}" for name, value in key.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class GatewayProcess:
    """One gateway process; `base_url` is read from its start-up line (it binds port 0)."""

    def __init__(self, config: Path, environ: dict[str, str]) -> None:
        env = {**os.environ, "WG_ADMIN_KEY": ADMIN_KEY, **environ}
        self.proc = subprocess.Popen(  # noqa: S603 our own CLI, fixed arguments
            [sys.executable, "-m", "proxy.cli", "serve", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
        assert self.proc.stdout is not None
        self.output: list[bytes] = []
        self.base_url = ""
        for line in self.proc.stdout:  # blocks until the gateway has started (or died)
            self.output.append(line)
            text = line.decode(errors="replace")
            if text.startswith(BANNER):
                self.base_url = text[len(BANNER) :].split()[0]
                break
        if not self.base_url:
            self.proc.wait(timeout=30)
            raise RuntimeError(b"".join(self.output).decode(errors="replace"))
        self.root = self.base_url.removesuffix("/v1")
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def signal(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout_s: float = 60) -> int:
        code = self.proc.wait(timeout=timeout_s)
        self._drain.join(timeout=10)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            self.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
