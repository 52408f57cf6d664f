"""The `warmgate` command: one entry point, each subcommand owned by the module that implements it.

The dispatcher imports a subcommand's module only when it runs, so `warmgate sim` never loads the
gateway and `warmgate fleet` is the only command that loads SkyPilot.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from collections.abc import Callable, Sequence

# subcommand -> (module, one-line help). Each module exposes `main(argv: Sequence[str]) -> int`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("warmgate.proxy.cli.serve", "run the gateway (embedded defaults without --config)"),
    "sim": ("warmgate.backends.sim.cli", "run the SGLang simulator (one or more replicas)"),
    "keys": ("warmgate.proxy.cli.keys", "create, list, update and revoke API keys"),
    "usage": ("warmgate.proxy.cli.usage", "print usage from the request ledger"),
    "fleet": (
        "warmgate.backends.fleet.cli",
        "launch, list, sync and tear down SGLang backends (SkyPilot)",
    ),
}


def usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = ["usage: warmgate [--version] <command> [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        print(usage())
        return 0 if args else 2
    if args[0] == "--version":
        print(f"warmgate {importlib.metadata.version('warmgate')}")
        return 0
    command, rest = args[0], args[1:]
    if command not in SUBCOMMANDS:
        print(f"warmgate: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[command][0])
    entry: Callable[[Sequence[str]], int] = module.main
    return entry(rest)
