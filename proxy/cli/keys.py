"""`warmgate keys`: create (the secret is printed once), list, update and revoke API keys.

The keys live in the gateway's store (`[ledger] url`); every edge picks a change up within its
refresh interval (`[auth] refresh_interval_s`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

import msgspec

from warmgate.proxy.cli.usage import add_store_arguments, parse_moment, resolve_store_url
from warmgate.proxy.keys.issue import KeySpec, KeySpecError, check_update, issue_key, key_view
from warmgate.proxy.keys.key import Key
from warmgate.proxy.keys.store import KeyStore, KeyUpdate, open_key_store
from warmgate.proxy.settings import SettingsError

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
    parser = argparse.ArgumentParser(prog="warmgate keys", description=__doc__)
    add_store_arguments(parser)
    commands = parser.add_subparsers(dest="command", required=True)

    def limits(sub: argparse.ArgumentParser, unset: object) -> None:
        """On `update` an option not given is UNSET (left alone); `none` clears a limit."""
        sub.set_defaults(models=unset, rpm=unset, concurrency=unset, quota=unset, expires=unset)
        sub.add_argument("--models", type=parse_models, help="allowed models: a,b (or 'all')")
        sub.add_argument("--rpm", type=parse_limit, help="requests per minute")
        sub.add_argument("--concurrency", type=parse_limit, help="concurrent requests")
        sub.add_argument("--quota", help="request quota: N/day or N/month (or 'none')")
        sub.add_argument("--expires", help="expiry: YYYY-MM-DD, ISO 8601 or unix s ('none')")

    create = commands.add_parser("create", help="create a key; prints its secret once")
    create.add_argument("--name", required=True)
    limits(create, None)
    commands.add_parser("list", help="list keys (never their secrets)")
    update = commands.add_parser("update", help="change a key's name or limits")
    update.add_argument("key_id")
    update.add_argument("--name", default=msgspec.UNSET)
    limits(update, msgspec.UNSET)
    revoke = commands.add_parser("revoke", help="revoke a key (every edge within seconds)")
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


async def run(store: KeyStore, args: argparse.Namespace) -> int:
    await store.start()
    try:
        return await _dispatch(store, args)
    finally:
        await store.close()


async def _dispatch(store: KeyStore, args: argparse.Namespace) -> int:
    if args.command == "list":
        print(render([key for _, key in await store.load()]))
        return 0
    if args.command == "revoke":
        revoked = await store.revoke(args.key_id)
        if revoked is None:
            print(f"warmgate keys: no key {args.key_id}", file=sys.stderr)
            return 1
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
        key, secret = await issue_key(store, msgspec.convert(fields, KeySpec))
        print(f"created {key.id} ({key.name}). The secret is shown only now:\n{secret}")
        return 0
    changes = {name: value for name, value in fields.items() if value is not msgspec.UNSET}
    update = msgspec.convert(changes, KeyUpdate)
    current = await store.get(args.key_id)
    if current is None:
        print(f"warmgate keys: no key {args.key_id}", file=sys.stderr)
        return 1
    check_update(current, update)
    updated = await store.update(args.key_id, update)
    assert updated is not None
    print(render([updated]))
    return 0


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv))
    try:
        store = open_key_store(resolve_store_url(args))
        return asyncio.run(run(store, args))
    except (SettingsError, KeySpecError, ValueError, msgspec.ValidationError) as exc:
        print(f"warmgate keys: {exc}", file=sys.stderr)
        return 2
