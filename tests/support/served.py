"""`warmgate serve` as a child process, configured by a TOML file, its log lines collected.

The process prints its banner once every resource is up, so the fixture waits on that line
(the only wait: an external process coming up), never on a sleep. Each request's JSON log line
(the same row that goes to the ledger) is kept for tests to read.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BANNER = "Warmgate is serving on "
START_TIMEOUT_S = 60.0


class ServedGateway:
    """`config` None: the embedded defaults (`args` then says where, e.g. `--data-dir`)."""

    def __init__(
        self,
        config: Path | None,
        *,
        environ: dict[str, str],
        tmpdir: Path | None = None,
        args: Sequence[str] = (),
    ) -> None:
        env = {**os.environ, **environ, "PYTHONUNBUFFERED": "1"}
        if tmpdir is not None:  # where the gateway spools uploads
            env["TMPDIR"] = str(tmpdir)
        self.tmpdir = Path(tempfile.gettempdir()) if tmpdir is None else tmpdir
        argv = [sys.executable, "-m", "warmgate.proxy.cli", "serve", *args]
        if config is not None:
            argv += ["--config", str(config)]
        self._process = subprocess.Popen(  # noqa: S603  # our own CLI, fixed arguments
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=Path(__file__).parents[2],  # the repository root
        )
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self.base_url = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            banner = self.wait_for(lambda line: line.startswith(BANNER), START_TIMEOUT_S)
        except AssertionError:
            self.stop()
            raise
        self.base_url = banner[len(BANNER) :].split()[0]
        self.root = self.base_url.removesuffix("/v1")

    def _read(self) -> None:
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            with self._changed:
                self._lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._lines.append("")  # end of output
            self._changed.notify_all()

    def wait_for(self, matches: Any, timeout_s: float = 10.0) -> str:
        """The first output line `matches` accepts, waiting until it appears (or failing)."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        with self._changed:
            while True:
                for line in self._lines[seen:]:
                    if matches(line):
                        return line
                seen = len(self._lines)
                if self._process.poll() is not None and seen and self._lines[-1] == "":
                    raise AssertionError("warmgate serve exited:\n" + "\n".join(self._lines))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("no matching line:\n" + "\n".join(self._lines[-30:]))
                self._changed.wait(remaining)

    def request_log(self, request_id: str) -> dict[str, Any]:
        """The request's log line (written from its ledger row)."""
        line = self.wait_for(lambda text: f'"request_id":"{request_id}"' in text)
        record: dict[str, Any] = json.loads(line)
        return record

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self._lines)

    def signal(self, signum: signal.Signals) -> None:
        self._process.send_signal(signum)

    def wait(self, timeout_s: float = 60.0) -> int:
        """The exit status, once the process has ended and its output is read."""
        status = self._process.wait(timeout=timeout_s)
        self._reader.join(timeout=10)
        return status

    def drain(self) -> int:
        """SIGTERM, then the exit status once the process has ended; let go of it either way."""
        try:
            self.signal(signal.SIGTERM)
            return self.wait()
        finally:
            self.stop()

    def stop(self) -> None:
        if self._process.poll() is not None:
            self._reader.join(timeout=10)
            if self._process.stdout is not None:
                self._process.stdout.close()
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._reader.join(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()
