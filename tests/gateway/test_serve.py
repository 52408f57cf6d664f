"""`warmgate serve` as a new user runs it: no config, a printed URL and key, the SDK works."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

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
        "proxy.cli",
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
            reply = sdk.chat.completions.create(
                model="demo", messages=[{"role": "user", "content": "Hello!"}], max_tokens=4
            )
            assert reply.choices[0].message.content
            assert [model.id for model in sdk.models.list()] == ["demo"]
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0  # a graceful stop on SIGTERM
    assert '"event":"gateway_stopped"' in rest  # after draining requests and the ledger
    assert (tmp_path / "api-key").read_text().strip() == key
    assert (tmp_path / "ledger.sqlite3").exists()
