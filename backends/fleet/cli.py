"""`warmgate fleet ...`: launch, list, sync and tear down the SGLang backends (SkyPilot 0.14).

    warmgate fleet up MODEL [--serve | --cluster] [--infra CLOUD/REGION] [--replicas N]
    warmgate fleet status
    warmgate fleet down (MODEL ... | --all)
    warmgate fleet sync [--out backends.json] [--watch SECONDS] [--keep MODEL=N] [--no-relaunch]

MODEL is the stem of a task file in `--models-dir` (default `sky/models`). The secrets a task
declares (HF_TOKEN, SGLANG_API_KEY) are read from the environment, like `--secret NAME`.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from warmgate.backends.fleet.discovery import field, status_name
from warmgate.backends.fleet.document import DocumentError
from warmgate.backends.fleet.lineup import Lineup, LineupError
from warmgate.backends.fleet.naming import (
    cluster_name,
    parse_cluster_name,
    parse_service_name,
    service_name,
)
from warmgate.backends.fleet.skypilot import FleetError, SkyPilot
from warmgate.backends.fleet.sync import Keeper, Syncer

# The task files ship with the package: `sky/` of the checkout is `warmgate/sky/` once installed,
# two folders above this module in both.
TASKS_DIR = Path(__file__).resolve().parents[2] / "sky"
DEFAULT_MODELS_DIR = TASKS_DIR / "models"
DEFAULT_OUT = Path("backends.json")
DEFAULT_API_KEY_ENV = "SGLANG_API_KEY"


@dataclass
class Context:
    """What a command works with; tests hand in their own SDK, environment, clock and stop."""

    sky: SkyPilot
    environ: Mapping[str, str]
    stdout: TextIO
    stop: threading.Event
    clock: Callable[[], datetime] | None = None

    def now(self) -> datetime:
        return self.clock() if self.clock is not None else datetime.now(UTC)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="warmgate fleet", description=__doc__.split("\n")[0])
    root.add_argument(
        "--models-dir",
        type=Path,
        default=DEFAULT_MODELS_DIR,
        help="directory of the model task files (default: the task files shipped with warmgate)",
    )
    commands = root.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="launch a model (SkyServe service or plain clusters)")
    up.add_argument("model")
    mode = up.add_mutually_exclusive_group()
    mode.add_argument(
        "--serve",
        dest="serve",
        action="store_true",
        default=True,
        help="a SkyServe service: self-healing replicas (default)",
    )
    mode.add_argument(
        "--cluster",
        dest="serve",
        action="store_false",
        help="plain clusters wg-<model>-c1..cN (keep them with sync --watch)",
    )
    up.add_argument("--infra", help="where to run: CLOUD or CLOUD/REGION (overrides the file)")
    up.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="minimum replicas (--serve) or number of clusters (--cluster)",
    )

    commands.add_parser("status", help="list the fleet's clusters, services and replicas")

    down = commands.add_parser("down", help="tear down a model's clusters and service")
    down.add_argument("models", nargs="*")
    down.add_argument("--all", action="store_true", help="every model of the lineup")

    sync = commands.add_parser("sync", help="write the backends document edges load")
    sync.add_argument("--out", type=Path, default=DEFAULT_OUT)
    sync.add_argument(
        "--watch",
        type=float,
        metavar="SECONDS",
        help="sync again every SECONDS and keep plain clusters warm",
    )
    sync.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="MODEL=N",
        help="with --watch: clusters wg-MODEL-c1..cN must exist (repeatable)",
    )
    sync.add_argument(
        "--no-relaunch",
        dest="relaunch",
        action="store_false",
        help="with --watch: only write the document (what edges run)",
    )
    sync.add_argument(
        "--api-key-env",
        default=DEFAULT_API_KEY_ENV,
        help="env var that holds the backends' key on the edge (a name, not a key)",
    )
    return root


def main(argv: Sequence[str]) -> int:
    context = Context(sky=SkyPilot(), environ=os.environ, stdout=sys.stdout, stop=threading.Event())
    try:
        return run(argv, context)
    except KeyboardInterrupt:
        return 130


def run(argv: Sequence[str], context: Context) -> int:
    args = parser().parse_args(list(argv))
    try:
        lineup = Lineup.from_directory(args.models_dir, context.sky.read_config)
        if args.command == "up":
            return up(args, lineup, context)
        if args.command == "status":
            return status(lineup, context)
        if args.command == "down":
            return down(args, lineup, context)
        return sync(args, lineup, context)
    except (FleetError, LineupError, DocumentError) as exc:
        print(f"warmgate fleet: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if not skypilot_error(exc):
            raise
        print(f"warmgate fleet: SkyPilot: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def skypilot_error(exc: Exception) -> bool:
    """An error a SkyPilot request raised (its own exception types, an unreachable API server,
    a cloud refusal): the command ends with its message, not a traceback."""
    return type(exc).__module__.split(".")[0] == "sky" or isinstance(exc, RuntimeError | OSError)


def up(args: argparse.Namespace, lineup: Lineup, context: Context) -> int:
    model = lineup.get(args.model)
    if args.replicas < 1:
        raise FleetError("--replicas must be at least 1: the fleet never scales to zero")
    if args.serve:
        task = context.sky.task(
            model, environ=context.environ, infra=args.infra, min_replicas=args.replicas
        )
        endpoint = context.sky.serve_up(task, service_name(model.key))
        print(
            f"{service_name(model.key)}: load balancer {endpoint} (edges use the replicas; "
            "run `warmgate fleet sync`)",
            file=context.stdout,
        )
        return 0
    present = {str(field(r, "name")) for r in context.sky.clusters()}
    names = [cluster_name(model.key, i) for i in range(1, args.replicas + 1)]
    requests = []
    for name in names:
        if name in present:
            print(f"{name}: exists, left as it is", file=context.stdout)
            continue
        task = context.sky.task(model, environ=context.environ, infra=args.infra)
        requests.append((name, context.sky.launch(task, name, wait=False)))
    for name, request_id in requests:
        context.sky.wait(request_id)
        print(f"{name}: launched", file=context.stdout)
    return 0


def status(lineup: Lineup, context: Context) -> int:
    rows = []
    for record in context.sky.clusters(refresh=True):
        name = str(field(record, "name"))
        parsed = parse_cluster_name(name, lineup.keys())
        if parsed is None:
            continue
        url = context.sky.endpoint(name, lineup.get(parsed.model_key).port) or "-"
        rows.append(
            (
                "cluster",
                name,
                parsed.model_key,
                status_name(field(record, "status")),
                field(record, "region") or "-",
                url,
            )
        )
    for service in context.sky.services():
        name = str(service.get("name"))
        key = parse_service_name(name, lineup.keys())
        if key is None:
            continue
        rows.append(
            (
                "service",
                name,
                key,
                status_name(service.get("status")),
                "-",
                service.get("endpoint") or "-",
            )
        )
        for replica in service.get("replica_info") or ():
            rows.append(
                (
                    "replica",
                    f"{name}/{replica.get('replica_id')}",
                    key,
                    status_name(replica.get("status")),
                    replica.get("region") or "-",
                    replica.get("endpoint") or "-",
                )
            )
    header = ("KIND", "NAME", "MODEL", "STATUS", "REGION", "URL")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        line = "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        print(line.rstrip(), file=context.stdout)
    return 0


def down(args: argparse.Namespace, lineup: Lineup, context: Context) -> int:
    if args.all == bool(args.models):
        raise FleetError("name the models to tear down, or pass --all")
    keys = set(lineup.keys()) if args.all else {lineup.get(m).key for m in args.models}
    for record in context.sky.clusters():
        name = str(field(record, "name"))
        parsed = parse_cluster_name(name, lineup.keys())
        if parsed is not None and parsed.model_key in keys:
            context.sky.down(name)
            print(f"{name}: down", file=context.stdout)
    for service in context.sky.services():
        name = str(service.get("name"))
        if parse_service_name(name, lineup.keys()) in keys:
            context.sky.serve_down(name)
            print(f"{name}: down", file=context.stdout)
    return 0


def sync(args: argparse.Namespace, lineup: Lineup, context: Context) -> int:
    keeper = None
    if args.watch is not None and args.relaunch:
        keeper = Keeper(context.sky, lineup, context.environ, keep=parse_keep(args.keep))
    elif args.keep:
        raise FleetError("--keep needs --watch (and no --no-relaunch)")
    syncer = Syncer(context.sky, lineup, args.out, args.api_key_env, context.now, keeper)
    if args.watch is None:
        document = syncer.run_once()
        written = "unchanged" if document is None else f"version {document.version}"
        print(f"{args.out}: {written}", file=context.stdout)
        return 0
    if args.watch <= 0:
        raise FleetError("--watch takes a positive number of seconds")
    syncer.watch(args.watch, context.stop)
    return 0


def parse_keep(specs: Sequence[str]) -> dict[str, int]:
    keep = {}
    for spec in specs:
        key, _, count = spec.partition("=")
        if not count.isascii() or not count.isdigit() or int(count) < 1:
            raise FleetError(f"--keep {spec!r}: expected MODEL=N with N >= 1")
        keep[key] = int(count)
    return keep
