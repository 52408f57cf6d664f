"""The usage API: a key reads its own usage and requests; the admin reads everyone's.

`GET /v1/usage?start=&end=&group_by=day|model` sums the caller's own rows; `GET
/v1/generations/{id}` returns one of the caller's own rows (another key's id is a 404, exactly
like an id that does not exist); `GET /admin/usage` sums every key's rows, grouped by key, model or
day, as JSON or as CSV (`Accept: text/csv`). Reads flush this edge's ledger first, so an edge
always sees its own writes.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Protocol

import msgspec
from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from warmgate.proxy.errors import InvalidRequest, NotFound
from warmgate.proxy.keys.ring import KeyRing
from warmgate.proxy.ledger.row import LedgerRow, format_usd
from warmgate.proxy.ledger.usage import GroupBy, UsageBucket, UsageFilter, parse_time
from warmgate.proxy.media import CSV, JSON

AnyRequest = Request[Any, Any, Any]
CSV_COLUMNS = (
    "group",
    "requests",
    "billed_requests",
    "cost_usd",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
)
_encode = msgspec.json.Encoder().encode


class UsageReader(Protocol):
    async def get(self, request_id: str) -> LedgerRow | None: ...
    async def usage(self, where: UsageFilter, group_by: GroupBy | None) -> list[UsageBucket]: ...


def parse_group(value: str | None, allowed: tuple[str, ...]) -> GroupBy | None:
    if value is None or value == "":
        return None
    if value not in allowed:
        raise InvalidRequest(
            f"Invalid 'group_by': expected one of {', '.join(allowed)}.",
            param="group_by",
            code="invalid_value",
        )
    return value  # type: ignore[return-value]


def bucket_view(bucket: UsageBucket) -> dict[str, Any]:
    return {
        "object": "usage.bucket",
        "group": bucket.group,
        "requests": bucket.requests,
        "billed_requests": bucket.billed_requests,
        "cost_usd": format_usd(bucket.cost_micro_usd),
        "cost_micro_usd": bucket.cost_micro_usd,
        "prompt_tokens": bucket.prompt_tokens,
        "cached_tokens": bucket.cached_tokens,
        "completion_tokens": bucket.completion_tokens,
    }


def total(buckets: list[UsageBucket]) -> UsageBucket:
    out = UsageBucket(group=None)
    for b in buckets:
        out.requests += b.requests
        out.billed_requests += b.billed_requests
        out.cost_micro_usd += b.cost_micro_usd
        out.prompt_tokens += b.prompt_tokens
        out.cached_tokens += b.cached_tokens
        out.completion_tokens += b.completion_tokens
    return out


def generation_view(row: LedgerRow) -> dict[str, Any]:
    view: dict[str, Any] = {"object": "generation", "id": row.request_id}
    view.update(msgspec.structs.asdict(row))
    view["price_usd"] = format_usd(row.price_micro_usd)
    view["cost_usd"] = format_usd(row.cost_micro_usd)
    return view


def _json(body: object) -> Response[bytes]:
    return Response(_encode(body), media_type=JSON)


def _csv(buckets: list[UsageBucket]) -> Response[bytes]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for b in buckets:
        view = bucket_view(b)
        writer.writerow(["" if view[c] is None else view[c] for c in CSV_COLUMNS])
    return Response(out.getvalue().encode(), media_type=CSV)


def _usage_body(
    buckets: list[UsageBucket], where: UsageFilter, group_by: GroupBy | None
) -> dict[str, Any]:
    return {
        "object": "usage",
        "key_id": where.key_id,
        "start": where.start,
        "end": where.end,
        "group_by": group_by,
        "data": [bucket_view(b) for b in buckets],
        "total": bucket_view(total(buckets)),
    }


def usage_routes(keys: KeyRing, ledger: UsageReader) -> list[HTTPRouteHandler]:
    @get("/v1/usage", name="usage")
    async def usage(request: AnyRequest) -> Response[bytes]:
        key = keys.authenticate(request.headers.get("authorization"))
        params = request.query_params
        group_by = parse_group(params.get("group_by"), ("day", "model"))
        where = UsageFilter(
            key_id=key.id,
            start=parse_time(params.get("start"), "start"),
            end=parse_time(params.get("end"), "end"),
        )
        buckets = await ledger.usage(where, group_by or "day")
        if group_by is None:  # one total over the range
            buckets = [total(buckets)] if buckets else []
        return _json(_usage_body(buckets, where, group_by))

    @get("/v1/generations/{generation_id:str}", name="generation")
    async def generation(request: AnyRequest, generation_id: FromPath[str]) -> Response[bytes]:
        key = keys.authenticate(request.headers.get("authorization"))
        row = await ledger.get(generation_id)
        if row is None or row.key_id != key.id:  # another key's request does not exist for you
            raise NotFound(f"No generation found with id '{generation_id}'.", param="id")
        return _json(generation_view(row))

    return [usage, generation]


def admin_usage_routes(ledger: UsageReader) -> list[HTTPRouteHandler]:
    """Mounted behind the admin guard (`proxy.routes.admin_access`)."""

    @get("/admin/usage", name="admin_usage")
    async def admin_usage(request: AnyRequest) -> Response[bytes]:
        params = request.query_params
        group_by = parse_group(params.get("group_by") or "key", ("key", "model", "day"))
        where = UsageFilter(
            key_id=params.get("key_id") or None,
            start=parse_time(params.get("start"), "start"),
            end=parse_time(params.get("end"), "end"),
        )
        buckets = await ledger.usage(where, group_by)
        if "text/csv" in request.headers.get("accept", ""):
            return _csv(buckets)
        return _json(_usage_body(buckets, where, group_by))

    return [admin_usage]
