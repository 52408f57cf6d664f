"""`warmgate keys`: create (the secret is printed once), list, update and revoke API keys.

The keys live in the gateway's store (`[ledger] url`); every edge picks a change up within its
refresh interval (`[auth] refresh_interval_s`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import msgspec

from warmgate.proxy.cli.options import (
    RUNTIME,
    CommandError,
    config_settings,
    run_reported,
    store_options,
    store_url,
)
from warmgate.proxy.cli.usage import parse_moment
from warmgate.proxy.keys.issue import KeySpec, check_update, issue_key, key_view
from warmgate.proxy.keys.key import Key
from warmgate.proxy.keys.store import KeyStore, KeyUpdate, open_key_store

PROG = "warmgate keys"

NONE = "none"  # `--rpm none` clears a limit


def parse_quota(value: str) -> tuple[int, str]:
    """`1000/day` or `50000/month` -> (count, period)."""
    count, _, period = value.partition("/")
    if period not in {"day", "month"} or not count.isdigit():
        raise ValueError("quota is N/day or N/month")
    return int(count), period


def parse_limit(value: str) -> int | None:
    if value.lower() == NONE:
        return None
    if not value.isdigit():
        raise argparse.ArgumentTypeError("a limit is a whole number or 'none'")
    return int(value)


def parse_models(value: str) -> list[str] | None:
    return None if value.lower() in {NONE, "all", "*"} else [m for m in value.split(",") if m]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    store_options(parser, top_level=True)
    where = argparse.ArgumentParser(add_help=False)
    store_options(where, top_level=False)
    commands = parser.add_subparsers(dest="command", required=True)

    def limits(sub: argparse.ArgumentParser, unset: object) -> None:
        """On `update` an option not given is UNSET (left alone); `none` clears a limit."""
        sub.set_defaults(models=unset, rpm=unset, concurrency=unset, quota=unset, expires=unset)
        sub.add_argument("--models", type=parse_models, help="allowed models: a,b (or 'all')")
        sub.add_argument("--rpm", type=parse_limit, help="requests per minute")
        sub.add_argument("--concurrency", type=parse_limit, help="concurrent requests")
        sub.add_argument("--quota", help="request quota: N/day or N/month (or 'none')")
        sub.add_argument("--expires", help="expiry: YYYY-MM-DD, ISO 8601 or unix s ('none')")

    create = commands.add_parser(
        "create", parents=[where], help="create a key; prints its secret once"
    )
    create.add_argument("--name", required=True)
    limits(create, None)
    commands.add_parser("list", parents=[where], help="list keys (never their secrets)")
    update = commands.add_parser("update", parents=[where], help="change a key's name or limits")
    update.add_argument("key_id")
    update.add_argument("--name", default=msgspec.UNSET)
    limits(update, msgspec.UNSET)
    revoke = commands.add_parser(
        "revoke", parents=[where], help="revoke a key (every edge within seconds)"
    )
    revoke.add_argument("key_id")
    return parser


def _quota(value: str | msgspec.UnsetType | None) -> dict[str, Any]:
    if value is None or value is msgspec.UNSET:
        return {}
    if value.lower() == NONE:
        return {"quota": None, "quota_period": None}
    count, period = parse_quota(value)
    return {"quota": count, "quota_period": period}


def _expiry(value: str | msgspec.UnsetType | None) -> dict[str, Any]:
    if value is None or value is msgspec.UNSET:
        return {}
    return {"expires_at": None if value.lower() == NONE else parse_moment(value)}


def render(keys: Sequence[Key]) -> str:
    header = ("id", "name", "models", "rpm", "concurrency", "quota", "expires", "revoked")
    rows = [header]
    for key in keys:
        view = key_view(key)
        quota = f"{key.quota}/{key.quota_period}" if key.quota is not None else "-"
        rows.append(
            (
                key.id,
                key.name,
                ",".join(view["allowed_models"]) if view["allowed_models"] else "all",
                "-" if key.rpm is None else str(key.rpm),
                "-" if key.max_concurrency is None else str(key.max_concurrency),
                quota,
                "-" if key.expires_at is None else f"{key.expires_at:.0f}",
                "yes" if key.revoked else "no",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


async def run(
    store: KeyStore, args: argparse.Namespace, known_models: Collection[str] | None
) -> int:
    # Only `create` may make a new store; listing, updating or revoking need an existing one.
    await store.start(create=args.command == "create")
    try:
        return await _dispatch(store, args, known_models)
    finally:
        await store.close()


async def _dispatch(
    store: KeyStore, args: argparse.Namespace, known_models: Collection[str] | None
) -> int:
    if args.command == "list":
        print(render([key for _, key in await store.load()]))
        return 0
    if args.command == "revoke":
        revoked = await store.revoke(args.key_id)
        if revoked is None:
            raise CommandError(f"no key {args.key_id}", RUNTIME)
        print(f"revoked {revoked.id} ({revoked.name})")
        return 0
    fields: dict[str, Any] = {
        "name": args.name,
        "allowed_models": args.models,
        "rpm": args.rpm,
        "max_concurrency": args.concurrency,
        **_quota(args.quota),
        **_expiry(args.expires),
    }
    if args.command == "create":
        spec = msgspec.convert(fields, KeySpec)
        key, secret = await issue_key(store, spec, known_models=known_models)
        print(f"created {key.id} ({key.name}). The secret is shown only now:\n{secret}")
        return 0
    changes = {name: value for name, value in fields.items() if value is not msgspec.UNSET}
    update = msgspec.convert(changes, KeyUpdate)
    current = await store.get(args.key_id)
    if current is None:
        raise CommandError(f"no key {args.key_id}", RUNTIME)
    check_update(current, update)
    updated = await store.update(args.key_id, update)
    if updated is None:  # revoked and removed between the two reads
        raise CommandError(f"no key {args.key_id}", RUNTIME)
    print(render([updated]))
    return 0


def main(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(list(argv))
    env = os.environ if environ is None else environ

    def body() -> int:
        settings = config_settings(args, env)
        # With a config, a new key may name only the models that config serves.
        models = [m.name for m in settings.models] if settings and settings.models else None
        store = open_key_store(store_url(args, env))
        return asyncio.run(run(store, args, models))

    return run_reported(PROG, body)
