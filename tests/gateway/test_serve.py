"""`warmgate serve` as a new user runs it: no config, a printed URL and key, the SDK works."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from openai import OpenAI


def read_banner(process: subprocess.Popen[str]) -> tuple[str, str, str]:
    """(base URL, API key, the whole banner) from the command's output, as it prints them."""
    assert process.stdout is not None
    seen: list[str] = []
    url = key = None
    while key is None:
        line = process.stdout.readline()
        assert line, "warmgate serve exited before printing its key:\n" + "".join(seen)
        seen.append(line)
        if found := re.search(r"serving on (http://\S+/v1)", line):
            url = found[1]
        if found := re.match(r"API key: (wg-\S+)", line):
            key = found[1]
    while (line := process.stdout.readline()).strip() != "print(reply.choices[0].message.content)":
        seen.append(line)
    assert url is not None
    return url, key, "".join(seen)


def test_serve_without_a_config_runs_the_simulator_and_prints_a_working_key(
    tmp_path: Path,
) -> None:
    command = [
        sys.executable,
        "-m",
        "warmgate.proxy.cli",
        "serve",
        "--port",
        "0",
        "--data-dir",
        str(tmp_path),
    ]
    process = subprocess.Popen(  # noqa: S603  # our own command with fixed arguments
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        url, key, banner = read_banner(process)
        assert f'OpenAI(base_url="{url}", api_key="{key}")' in banner
        with OpenAI(base_url=url, api_key=key, max_retries=0) as sdk:
            raw = sdk.chat.completions.with_raw_response.create(
                model="demo", messages=[{"role": "user", "content": "Hello!"}], max_tokens=4
            )
            assert raw.parse().choices[0].message.content
            # The embedded key sets no limit: it is held to [limits] default_rpm, and says so.
            assert raw.headers["x-ratelimit-limit-requests"] == "6000"
            assert raw.headers["x-ratelimit-remaining-requests"] == "5999"
            assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
            assert [model.id for model in sdk.models.list()] == ["demo"]
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0  # a graceful stop on SIGTERM
    assert '"event":"gateway_stopped"' in rest  # after draining requests and the ledger
    assert (tmp_path / "api-key").read_text().strip() == key
    assert (tmp_path / "ledger.sqlite3").exists()


SECRET = "hunter2-" + "s" * 24
GOOD_BACKEND = '[[models.backends]]\nurl = "http://127.0.0.1:9"\n'
BAD_CONFIGS = {
    "invalid_toml": ("[[models]\nname = ", "cannot read"),
    "wrong_type": ("host = 8080\n", "Expected `str`, got `int` - at `$.host`"),
    "unknown_field": ("[server]\nmax_body = 1\n", "unknown field `max_body`"),
    "no_backend": ('[[models]]\nname = "demo"\n', "model 'demo' has no backends"),
    "bad_backend_url": (
        f'[[models]]\nname = "demo"\n[[models.backends]]\nurl = "ftp://bob:{SECRET}@x"\n',
        "is not http(s)://host",
    ),
    "missing_backend_key_env": (
        '[[models]]\nname = "demo"\n[[models.backends]]\nurl = "http://127.0.0.1:9"\n'
        'api_key_env = "WG_UNSET_BACKEND_KEY"\n',
        "environment variable WG_UNSET_BACKEND_KEY",
    ),
    "missing_user_key_env": (
        f'[[keys]]\nname = "k"\nsecret_env = "WG_UNSET_USER_KEY"\n'
        f'[[models]]\nname = "demo"\n{GOOD_BACKEND}',
        "environment variable WG_UNSET_USER_KEY (key 'k') is not set",
    ),
    "bad_ledger_url": (
        f'[ledger]\nurl = "mysql://bob:{SECRET}@db/warmgate"\n'
        f'[[models]]\nname = "demo"\n{GOOD_BACKEND}',
        "store url must start with sqlite:/// or postgresql://",
    ),
}


def serve_config(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "warmgate.toml"
    config.write_text(f'port = 0\ndata_dir = "{tmp_path}"\n{text}', encoding="utf-8")
    command = [sys.executable, "-m", "warmgate.proxy.cli", "serve", "--config", str(config)]
    return subprocess.run(  # noqa: S603  # our own command with fixed arguments
        command,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "WG_PRESENT_KEY": SECRET},
    )


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_a_bad_config_prints_one_error_line_without_a_secret_and_exits_2(
    tmp_path: Path, case: str
) -> None:
    text, expected = BAD_CONFIGS[case]
    result = serve_config(tmp_path, text)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("warmgate serve: ")
    assert expected in lines[0]
    assert SECRET not in result.stderr


def test_a_store_that_cannot_be_reached_stops_the_start_with_one_line_and_status_1(
    tmp_path: Path,
) -> None:
    unreachable = f"postgresql://bob:{SECRET}@127.0.0.1:1/warmgate"
    result = serve_config(
        tmp_path, f'[ledger]\nurl = "{unreachable}"\n[[models]]\nname = "demo"\n{GOOD_BACKEND}'
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("warmgate serve: cannot start: ")
    assert "Traceback" not in result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr
