"""The TOML file a billing test's `warmgate serve` process runs on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.billing.edge import PRICE


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
