"""What every `warmgate` command of the gateway shares: where the store is, and how it fails.

A command says what went wrong in one line and exits with status 2 (the command line or the
configuration is wrong: usage) or 1 (something it needed at run time failed: a database down or
missing, a port taken); never a traceback, never a credential.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import asyncpg
import msgspec

from warmgate.proxy.settings import Settings, SettingsError, load_settings
from warmgate.proxy.store.database import StoreMissing, parse_store_url

USAGE = 2
RUNTIME = 1
# `scheme://user:password@`: shown as `scheme://***@` in any error line.
CREDENTIALS = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


class CommandError(Exception):
    """A failure the command reports in one line, with its exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def store_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """--config, --db and --data-dir, accepted before and after the subcommand alike: the
    subcommand's copies default to SUPPRESS, so they only override what was typed."""
    default = None if top_level else argparse.SUPPRESS
    parser.add_argument("--config", default=default, help="TOML settings file ([ledger] url)")
    parser.add_argument(
        "--db", default=default, help="store URL: sqlite:///path or postgresql://..."
    )
    parser.add_argument(
        "--data-dir", default=default, help="the data directory of a gateway run without --config"
    )


def config_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings | None:
    return load_settings(args.config, environ) if args.config else None


def store_url(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """--db, else the config's store, else the embedded gateway's SQLite file; checked."""
    if args.db:
        url = str(args.db)
    elif args.config:
        url = load_settings(args.config, environ).ledger_url
    else:
        url = Settings(data_dir=args.data_dir or Settings().data_dir).ledger_url
    parse_store_url(url)  # ValueError: an unknown scheme
    return url


def fail(prog: str, message: str, status: int) -> int:
    """Print one line (credentials masked) and give the exit status."""
    shown = CREDENTIALS.sub(r"\1***@", " ".join(message.split()))
    print(f"{prog}: {shown}", file=sys.stderr)
    return status


@contextmanager
def reported(prog: str, outcome: list[int]) -> Iterator[None]:
    """Run a command body; any failure becomes one line on stderr and `outcome[0]` its
    exit status."""
    try:
        yield
    except CommandError as exc:
        outcome[0] = fail(prog, str(exc), exc.status)
    except (SettingsError, msgspec.ValidationError, ValueError) as exc:
        outcome[0] = fail(prog, str(exc), USAGE)
    except StoreMissing as exc:
        outcome[0] = fail(prog, f"{exc} (has `warmgate serve` run with this store?)", RUNTIME)
    except (OSError, sqlite3.Error, TimeoutError) as exc:
        outcome[0] = fail(prog, f"cannot reach the store: {_describe(exc)}", RUNTIME)
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        outcome[0] = fail(prog, f"the database refused: {_describe(exc)}", RUNTIME)


def run_reported(prog: str, body: Callable[[], int]) -> int:
    """`body()`'s exit status, or 1/2 with one line when it fails."""
    outcome = [0]
    with reported(prog, outcome):
        outcome[0] = body()
    return outcome[0]


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
