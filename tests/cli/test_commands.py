"""The real `warmgate` command, as a user types it: mistakes end in one line and a status.

Status 2: the command line or the configuration is wrong; status 1: something needed at run
time failed (a database down or missing, a store that does not exist). Never a traceback,
never a credential.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

SECRET = "s3cr3t-password"


def warmgate(
    *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str, str]:
    result = subprocess.run(  # noqa: S603  # the test's own arguments
        [sys.executable, "-m", "warmgate.proxy.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_version_prints_the_installed_version() -> None:
    status, out, _ = warmgate("--version")
    assert status == 0
    assert out.startswith("warmgate ")
    assert out.split()[1][0].isdigit()


@pytest.mark.parametrize("command", [["keys", "list"], ["usage"]])
def test_an_unknown_store_scheme_is_a_usage_error(command: list[str]) -> None:
    status, _, err = warmgate(*command, "--db", f"mysql://bob:{SECRET}@localhost/x")
    line = one_line(err)
    assert status == 2
    assert "sqlite:///" in line
    assert SECRET not in line


@pytest.mark.postgres
@pytest.mark.parametrize("command", [["keys", "list"], ["usage"]])
def test_postgresql_down_is_one_line_and_status_1(command: list[str]) -> None:
    status, _, err = warmgate(*command, "--db", f"postgresql://bob:{SECRET}@127.0.0.1:1/x")
    line = one_line(err)
    assert status == 1
    assert "cannot reach the store" in line
    assert SECRET not in line


@pytest.mark.postgres
@pytest.mark.parametrize("command", [["keys", "list"], ["usage"]])
def test_a_missing_database_is_one_line_and_status_1(command: list[str]) -> None:
    missing = f"warmgate_missing_{uuid.uuid4().hex[:8]}"
    status, _, err = warmgate(*command, "--db", f"postgresql://postgres@127.0.0.1:5432/{missing}")
    line = one_line(err)
    assert status == 1
    assert missing in line


@pytest.mark.parametrize("command", [["keys", "list"], ["usage"]])
def test_a_read_command_never_creates_an_empty_store(command: list[str], tmp_path: Path) -> None:
    store = tmp_path / "nowhere" / "ledger.sqlite3"
    status, _, err = warmgate(*command, "--db", f"sqlite:///{store}")
    line = one_line(err)
    assert status == 1
    assert str(store) in line
    assert not store.parent.exists()


def write_config(folder: Path, extra: str = "") -> Path:
    config = folder / "edge.toml"
    config.write_text(
        'data_dir = "state"\n'
        + extra
        + '[[models]]\nname = "demo"\nbackends = [{ url = "http://127.0.0.1:1" }]\n'
        + '[[models]]\nname = "big"\nbackends = [{ url = "http://127.0.0.1:1" }]\n',
        encoding="utf-8",
    )
    return config


def test_store_options_work_before_and_after_the_subcommand(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # Options after the subcommand, run from another folder: data_dir is the file's.
    status, out, err = warmgate(
        "keys", "create", "--name", "a", "--config", str(config), cwd=elsewhere
    )
    assert status == 0, err
    assert "wg-" in out
    assert (tmp_path / "state" / "ledger.sqlite3").is_file()
    assert not (elsewhere / "state").exists()
    # ... and before it.
    status, out, err = warmgate("keys", "--config", str(config), "list", cwd=elsewhere)
    assert status == 0, err
    assert " a " in out


def test_keys_create_refuses_a_past_expiry_and_unknown_models(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    status, _, err = warmgate(
        "keys", "create", "--config", str(config), "--name", "x", "--expires", "2020-01-01"
    )
    assert status == 2
    assert "past" in one_line(err)
    status, _, err = warmgate(
        "keys", "create", "--config", str(config), "--name", "x", "--models", "demo,nope"
    )
    assert status == 2
    line = one_line(err)
    assert "nope" in line
    assert "big, demo" in line
    status, _, err = warmgate(
        "keys", "create", "--config", str(config), "--name", "x", "--models", "demo",
        "--expires", str(int(time.time()) + 3600),
    )  # fmt: skip
    assert status == 0, err


def test_a_bad_time_is_a_usage_error(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    status, _, err = warmgate("usage", "--config", str(config), "--since", "yesterday-ish")
    assert status == 2
    assert "yesterday-ish" in one_line(err)


def test_store_urls_come_from_the_environment_when_the_file_names_a_variable(
    tmp_path: Path,
) -> None:
    config = write_config(
        tmp_path, '[ledger]\nurl_env = "WG_TEST_STORE"\n[limits]\nredis_url_env = "WG_TEST_REDIS"\n'
    )
    store = tmp_path / "from-env.sqlite3"
    env = {"WG_TEST_STORE": f"sqlite:///{store}", "WG_TEST_REDIS": "redis://127.0.0.1:6379/0"}
    status, _, err = warmgate("keys", "create", "--config", str(config), "--name", "e", env=env)
    assert status == 0, err
    assert store.is_file()
    status, _, err = warmgate("keys", "list", "--config", str(config), env={"WG_TEST_REDIS": "x"})
    assert status == 2
    assert "WG_TEST_STORE" in one_line(err)


def test_sim_on_a_port_in_use_is_one_line_and_status_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, _, err = warmgate("sim", "--port", str(port), "--replicas", "2")
    line = one_line(err)
    assert status == 1
    assert f"127.0.0.1:{port}" in line


def test_a_sigterm_while_serve_starts_stops_it_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(
        'data_dir = "state"\n[health]\nenabled = false\n'
        '[[models]]\nname = "demo"\nbackends = [{ url = "http://127.0.0.1:1" }]\n',
        encoding="utf-8",
    )
    # The banner comes once every resource is up, before uvicorn serves: a signal sent as
    # soon as it appears lands in that gap, where a process without a handler of its own dies.
    argv = [sys.executable, "-m", "warmgate.proxy.cli", "serve", "--config", str(config)]
    for _ in range(3):
        with subprocess.Popen(  # noqa: S603  # the test's own arguments
            [*argv, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as serve:
            assert serve.stdout is not None
            for line in serve.stdout:
                if line.startswith("Warmgate is serving on"):
                    break
            serve.send_signal(signal.SIGTERM)
            serve.stdout.read()
            assert serve.wait(timeout=60) == 0
