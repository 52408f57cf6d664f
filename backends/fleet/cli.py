"""`warmgate fleet ...`: launch, plan, list, sync, cost and tear down the SGLang backends.

    warmgate fleet up MODEL [--serve | --cluster] [--region R] [--infra CLOUD[/REGION]]
                            [--replicas N] [--provision-timeout SECONDS]
    warmgate fleet update MODEL [--region R] [--key-env NAME] [--blue-green]
    warmgate fleet plan [MODEL ...] [--infra CLOUD[/REGION]]
    warmgate fleet status [--out backends.json]
    warmgate fleet down (MODEL ... | --all)
    warmgate fleet sync [--out backends.json] [--watch SECONDS] [--keep MODEL=N] [--no-relaunch]
                        [--force] [--max-drop SHARE] [--controller-host HOST]
    warmgate fleet cost [--days N] [--db URL | --config FILE | --data-dir DIR]

MODEL is the stem of a task file in `--models-dir` (default: the task files shipped with
warmgate). The secrets a task declares (HF_TOKEN, SGLANG_API_KEY) are read from the environment,
like `--secret NAME`. Errors print one line: exit status 2 for a wrong command line, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn, TextIO

from warmgate.backends.fleet import cost as cost_report
from warmgate.backends.fleet import plan as fleet_plan
from warmgate.backends.fleet.discovery import field
from warmgate.backends.fleet.document import DocumentError
from warmgate.backends.fleet.keeper import HealthProbe, Keeper
from warmgate.backends.fleet.launch import (
    DEFAULT_PROVISION_TIMEOUT_S,
    Pace,
    infra_for,
    launch_clusters,
    region_of,
    start_service,
)
from warmgate.backends.fleet.ledger_source import (
    LedgerError,
    add_store_arguments,
    model_usage,
    store_url,
)
from warmgate.backends.fleet.lineup import Lineup, LineupError
from warmgate.backends.fleet.listing import status_rows
from warmgate.backends.fleet.naming import (
    cluster_name,
    parse_cluster_name,
    parse_service_name,
    service_name,
)
from warmgate.backends.fleet.skypilot import FleetError, SkyPilot, one_line
from warmgate.backends.fleet.sync import DEFAULT_MAX_DROP_SHARE, SKYSERVE_DRAIN_S, Syncer

# The task files ship with the package: `sky/` of the checkout is `warmgate/sky/` once installed,
# two folders above this module in both.
TASKS_DIR = Path(__file__).resolve().parents[2] / "sky"
DEFAULT_MODELS_DIR = TASKS_DIR / "models"
DEFAULT_OUT = Path("backends.json")
DEFAULT_API_KEY_ENV = "SGLANG_API_KEY"
PROG = "warmgate fleet"


class UsageError(Exception):
    """The command line is wrong (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


@dataclass
class Context:
    """What a command works with; tests hand in their own SDK, environment, clock, wait and
    stop."""

    sky: SkyPilot
    environ: Mapping[str, str]
    stdout: TextIO
    stop: threading.Event
    clock: Callable[[], datetime] | None = None
    # Waits up to the given seconds between polls (default: until `stop` is set or time is up).
    wait: Callable[[float], object] | None = None

    def now(self) -> datetime:
        return self.clock() if self.clock is not None else datetime.now(UTC)

    def pace(self) -> Pace:
        return Pace(
            now_s=lambda: self.now().timestamp(),
            wait=self.wait if self.wait is not None else self.stop.wait,
        )


def parser() -> argparse.ArgumentParser:
    root = _Parser(prog=PROG, description=__doc__.split("\n")[0])
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
        help="a SkyServe service wg-MODEL[-REGION]: self-healing replicas (default)",
    )
    mode.add_argument(
        "--cluster",
        dest="serve",
        action="store_false",
        help="plain clusters wg-MODEL-c1..cN (keep them with sync --watch)",
    )
    up.add_argument("--region", help="the region to run in; a service's name carries it")
    up.add_argument("--infra", help="where to run: CLOUD or CLOUD/REGION (overrides the file)")
    up.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="minimum replicas (--serve) or number of clusters (--cluster)",
    )
    up.add_argument(
        "--provision-timeout",
        type=float,
        default=DEFAULT_PROVISION_TIMEOUT_S,
        metavar="SECONDS",
        help="--serve: tear the service down if no replica is provisioned by then"
        f" (default {DEFAULT_PROVISION_TIMEOUT_S:.0f})",
    )

    update = commands.add_parser("update", help="roll a new version of a model's service")
    update.add_argument("model")
    update.add_argument("--region", help="the service of this region (wg-MODEL-REGION)")
    update.add_argument("--key-env", help="launch the new replicas with the key in this variable")
    update.add_argument(
        "--blue-green",
        action="store_true",
        help="switch once the new replicas are up (default: rolling)",
    )

    plan = commands.add_parser("plan", help="the optimizer's choice per model and its cost")
    plan.add_argument("models", nargs="*")
    plan.add_argument("--infra", help="restrict to CLOUD or CLOUD/REGION")

    status = commands.add_parser("status", help="the fleet's clusters, services and last sync")
    status.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the backends document")

    down = commands.add_parser("down", help="tear down a model's clusters and services")
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
    sync.add_argument("--infra", help="with --keep: where to launch a cluster never seen")
    sync.add_argument(
        "--no-relaunch",
        dest="relaunch",
        action="store_false",
        help="with --watch: only write the document (what edges run)",
    )
    sync.add_argument(
        "--api-key-env",
        default=DEFAULT_API_KEY_ENV,
        help="env var that holds the backends' key on the edge (a name, not a key);"
        " a backend labelled warmgate-key-env names its own",
    )
    sync.add_argument(
        "--force",
        action="store_true",
        help="write the document even if it drops more than --max-drop",
    )
    sync.add_argument(
        "--max-drop",
        type=float,
        default=DEFAULT_MAX_DROP_SHARE,
        metavar="SHARE",
        help="refuse a pass that drops more than this share of the backends",
    )
    sync.add_argument(
        "--controller-host", help="address edges reach the SkyServe controllers at (a forward)"
    )

    cost = commands.add_parser("cost", help="GPU-hours and cost per model against the ledger")
    cost.add_argument("--days", type=int, default=30, help="the window, in days (default 30)")
    add_store_arguments(cost)
    return root


def main(argv: Sequence[str]) -> int:
    context = Context(sky=SkyPilot(), environ=os.environ, stdout=sys.stdout, stop=threading.Event())
    try:
        return run(argv, context)
    except KeyboardInterrupt:
        return 130


def run(argv: Sequence[str], context: Context) -> int:
    try:
        args = parser().parse_args(list(argv))
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        lineup = Lineup.from_directory(args.models_dir, context.sky.read_config)
        return COMMANDS[args.command](args, lineup, context)
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except (FleetError, LineupError, DocumentError, LedgerError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - SkyPilot's errors end the command in one line
        print(f"{PROG}: {one_line(exc)}", file=sys.stderr)
        return 1


def up(args: argparse.Namespace, lineup: Lineup, context: Context) -> int:
    model = lineup.get(args.model)
    if args.replicas < 1:
        raise UsageError("--replicas must be at least 1: the fleet never scales to zero")
    if args.provision_timeout <= 0:
        raise UsageError("--provision-timeout takes a number of seconds above 0")
    try:
        infra = infra_for(args.region, args.infra)
        name = service_name(model.key, region_of(args.region, args.infra))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not args.serve:
        present = {str(field(r, "name")) for r in context.sky.clusters()}
        names = [cluster_name(model.key, i) for i in range(1, args.replicas + 1)]
        for existing in (n for n in names if n in present):
            print(f"{existing}: exists, left as it is", file=context.stdout)
        launch_clusters(
            context.sky,
            lambda: context.sky.task(model, environ=context.environ, infra=infra),
            [n for n in names if n not in present],
            context.stdout,
        )
        return 0
    task = context.sky.task(model, environ=context.environ, infra=infra, min_replicas=args.replicas)
    replica = start_service(
        context.sky,
        task,
        name,
        timeout_s=args.provision_timeout,
        pace=context.pace(),
        out=context.stdout,
    )
    where = " ".join(str(replica[k]) for k in ("cloud", "region") if replica.get(k))
    print(
        f"{name}: replica {replica.get('replica_id')} provisioned on {where or 'its cloud'}"
        " (edges take it once READY: `warmgate fleet sync`)",
        file=context.stdout,
    )
    return 0


def update(args: argparse.Namespace, lineup: Lineup, context: Context) -> int:
    model = lineup.get(args.model)
    try:
        name = service_name(model.key, args.region)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    task = context.sky.task(
        model, environ=context.environ, infra=infra_for(args.region, None), key_env=args.key_env
    )
    context.sky.serve_update(task, name, rolling=not args.blue_green)
    mode = "blue-green" if args.blue_green else "rolling"
    print(
        f"{name}: {mode} update started (`warmgate fleet status` shows the versions)",
        file=context.stdout,
    )
    return 0


def plan(args: argparse.Namespace, lineup: Lineup, context: Context) -> int:
    models = [lineup.get(m) for m in args.models] if args.models else list(lineup)
    choices = [fleet_plan.choose(context.sky, model, args.infra) for model in models]
    print(fleet_plan.render(choices), file=context.stdout)
    return 0


def status(args: argparse.Namespace, lineup: Lineup, context: Context) -> int:
    for line in status_rows(context.sky, lineup, args.out):
        print(line, file=context.stdout)
    return 0


def down(args: argparse.Namespace, lineup: Lineup, context: Context) -> int:
    if args.all == bool(args.models):
        raise UsageError("name the models to tear down, or pass --all")
    keys = set(lineup.keys()) if args.all else {lineup.get(m).key for m in args.models}
    for record in context.sky.clusters():
        name = str(field(record, "name"))
        parsed = parse_cluster_name(name, lineup.keys())
        if parsed is not None and parsed.model_key in keys:
            context.sky.down(name)
            print(f"{name}: down", file=context.stdout)
    for service in context.sky.services():
        name = str(service.get("name"))
        parsed_service = parse_service_name(name, lineup.keys())
        if parsed_service is not None and parsed_service.model_key in keys:
            context.sky.serve_down(name)
            print(f"{name}: down", file=context.stdout)
    return 0


def sync(args: argparse.Namespace, lineup: Lineup, context: Context) -> int:
    if not 0 <= args.max_drop <= 1:
        raise UsageError("--max-drop takes a share between 0 and 1")
    keeper = None
    if args.watch is not None and args.relaunch:
        keeper = Keeper(
            context.sky,
            lineup,
            context.environ,
            keep=parse_keep(args.keep),
            infra=args.infra,
            probe=HealthProbe(),
        )
    elif args.keep:
        raise UsageError("--keep needs --watch (and no --no-relaunch)")
    syncer = Syncer(
        context.sky,
        lineup,
        args.out,
        args.api_key_env,
        context.now,
        keeper,
        max_drop_share=args.max_drop,
        force=args.force,
        controller_host=args.controller_host,
    )
    if args.watch is None:
        document = syncer.run_once()
        written = "unchanged" if document is None else f"version {document.version}"
        print(f"{args.out}: {written}", file=context.stdout)
        return 0
    if not 0 < args.watch < SKYSERVE_DRAIN_S / 2:
        raise UsageError(
            f"--watch takes a number of seconds below {SKYSERVE_DRAIN_S / 2:.0f}: SkyServe drains "
            f"a replica it scales down for {SKYSERVE_DRAIN_S:.0f} s, edges must drop it sooner"
        )
    syncer.watch(args.watch, context.stop)
    return 0


def cost(args: argparse.Namespace, lineup: Lineup, context: Context) -> int:
    if args.days < 1:
        raise UsageError("--days must be at least 1")
    now_s = context.now().timestamp() if context.clock is not None else time.time()
    start_s = cost_report.window_start(now_s, args.days)
    usage = model_usage(store_url(args), start_s, now_s)
    rows = cost_report.costs(
        lineup,
        context.sky.cost_report(args.days),
        context.sky.services(),
        usage,
        window_start_s=start_s,
        now_s=now_s,
    )
    print(cost_report.render(rows, args.days), file=context.stdout)
    return 0


def parse_keep(specs: Sequence[str]) -> dict[str, int]:
    keep = {}
    for spec in specs:
        key, _, count = spec.partition("=")
        if not count.isascii() or not count.isdigit() or int(count) < 1:
            raise UsageError(f"--keep {spec!r}: expected MODEL=N with N >= 1")
        keep[key] = int(count)
    return keep


COMMANDS: dict[str, Callable[[argparse.Namespace, Lineup, Context], int]] = {
    "up": up,
    "update": update,
    "plan": plan,
    "status": status,
    "down": down,
    "sync": sync,
    "cost": cost,
}
