"""The console's JSON endpoints: usage and latency over time, and the fleet, for the admin.

`GET /admin/reports/usage`, `GET /admin/reports/latency` and `GET /admin/reports/fleet` are what
the console's pages draw; each is documented in the OpenAPI document with the Structs below
(the query Structs validate the query strings, the response Structs encode the answers), and
answers the admin key as well as a console session. Sums and percentiles come from the ledger
in SQL (`proxy.ledger.reports`), the fleet from the live pool.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler

from warmgate.proxy.errors import InvalidRequest
from warmgate.proxy.ledger.percentiles import LatencyGroup, LatencySeries
from warmgate.proxy.ledger.reports import (
    BUCKET_S,
    Bucket,
    LedgerReports,
    UsageGroup,
    UsagePoint,
    UsageTotals,
)
from warmgate.proxy.ledger.row import format_usd
from warmgate.proxy.ledger.usage import UsageFilter, parse_time
from warmgate.proxy.media import CSV, JSON
from warmgate.proxy.routing.pool import Pool

AnyRequest = Request[Any, Any, Any]
Q = TypeVar("Q", bound=msgspec.Struct)
# A chart of more points than this is unreadable, and its query needlessly long.
MAX_BUCKETS = 2500
DEFAULT_SPAN_S: dict[Bucket, int] = {"hour": 86400, "day": 30 * 86400}
FLEET_WINDOW_S = 3600
_encode = msgspec.json.Encoder().encode


class UsageReportQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`start`/`end`: unix seconds, a date (UTC midnight) or an ISO 8601 time; `end` defaults
    to now, `start` to one day (hourly buckets) or 30 days (daily) before it."""

    start: str | None = None
    end: str | None = None
    bucket: Bucket = "hour"
    group_by: UsageGroup = "model"
    top: Annotated[int, msgspec.Meta(ge=1, le=100)] = 10
    model: str | None = None
    key_id: str | None = None
    format: Literal["json", "csv"] = "json"


class LatencyReportQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    start: str | None = None
    end: str | None = None
    bucket: Bucket = "hour"
    group_by: LatencyGroup = "model"
    model: str | None = None
    key_id: str | None = None


class FleetQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    window_s: Annotated[int, msgspec.Meta(ge=60, le=7 * 86400)] = FLEET_WINDOW_S


class UsageGroupView(msgspec.Struct, kw_only=True):
    group: str | None
    name: str | None  # the key's name when grouped by key
    requests: int
    billed_requests: int
    revenue_usd: str
    revenue_micro_usd: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int


class UsageSeriesView(msgspec.Struct, kw_only=True):
    group: str | None
    name: str | None
    other: bool
    points: list[UsagePoint]


class UsageReportResponse(msgspec.Struct, kw_only=True):
    start: float
    end: float
    bucket: Bucket
    bucket_s: int
    group_by: UsageGroup
    groups: list[UsageGroupView]
    series: list[UsageSeriesView]
    total: UsageGroupView
    object: str = "console.usage_report"


class LatencyReportResponse(msgspec.Struct, kw_only=True):
    start: float
    end: float
    bucket: Bucket
    bucket_s: int
    group_by: LatencyGroup
    series: list[LatencySeries]
    object: str = "console.latency_report"


class BackendTrafficView(msgspec.Struct, kw_only=True):
    requests: int
    server_errors: int
    prompt_tokens: int
    cached_tokens: int
    cache_hit_rate: float | None  # cached / prompt tokens over the window


class FleetBackend(msgspec.Struct, kw_only=True):
    """One backend as the live pool describes it, with its traffic from the ledger."""

    id: str
    model: str
    url: str
    cloud: str | None
    region: str | None
    accelerators: str | None
    source: str
    health: str
    breaker: str
    routable: bool
    retired: bool
    load: int
    outstanding: int
    requests: int
    errors: int
    ejections: int
    probes: int
    last_probe_error: str | None
    traffic: BackendTrafficView | None = None


class FleetModel(msgspec.Struct, kw_only=True):
    name: str
    policy: str
    backends: int
    healthy: int


class FleetResponse(msgspec.Struct, kw_only=True):
    ready: bool
    in_flight: int
    window_s: int
    models: list[FleetModel]
    backends: list[FleetBackend]
    object: str = "console.fleet"


def decode_query(params: Mapping[str, str], kind: type[Q]) -> Q:
    """The query string as its Struct (numbers from their text); 400 naming the parameter."""
    try:
        return msgspec.convert(dict(params), kind, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        param = text.rpartition("`$.")[2].rstrip("`") if "`$." in text else None
        raise InvalidRequest(f"Invalid query: {text}", param=param, code="invalid_value") from None


def time_range(
    start: str | None, end: str | None, bucket: Bucket, now: float
) -> tuple[float, float]:
    end_s = parse_time(end, "end")
    end_s = now if end_s is None else end_s
    start_s = parse_time(start, "start")
    start_s = end_s - DEFAULT_SPAN_S[bucket] if start_s is None else start_s
    if start_s >= end_s:
        raise InvalidRequest("'start' must be before 'end'.", param="start", code="invalid_value")
    if (end_s - start_s) / BUCKET_S[bucket] > MAX_BUCKETS:
        raise InvalidRequest(
            f"The range holds more than {MAX_BUCKETS} buckets of a {bucket}: "
            "choose a shorter range or bucket=day.",
            param="bucket",
            code="invalid_value",
        )
    return start_s, end_s


def _group_view(totals: UsageTotals, name: str | None) -> UsageGroupView:
    return UsageGroupView(
        group=totals.group,
        name=name,
        requests=totals.requests,
        billed_requests=totals.billed_requests,
        revenue_usd=format_usd(totals.revenue_micro_usd),
        revenue_micro_usd=totals.revenue_micro_usd,
        prompt_tokens=totals.prompt_tokens,
        cached_tokens=totals.cached_tokens,
        completion_tokens=totals.completion_tokens,
    )


def _sum(groups: list[UsageTotals]) -> UsageTotals:
    total = UsageTotals(group=None)
    for g in groups:
        total.requests += g.requests
        total.billed_requests += g.billed_requests
        total.revenue_micro_usd += g.revenue_micro_usd
        total.prompt_tokens += g.prompt_tokens
        total.cached_tokens += g.cached_tokens
        total.completion_tokens += g.completion_tokens
    return total


def usage_csv(report: UsageReportResponse) -> bytes:
    """One line per bucket and group: what the chart shows, every group on its own."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["start", "group", "name", "requests", "billed_requests", "revenue_usd"])
    for series in report.series:
        for point in series.points:
            moment = dt.datetime.fromtimestamp(point.t, dt.UTC).isoformat().replace("+00:00", "Z")
            writer.writerow(
                [
                    moment,
                    series.group or "",
                    series.name or "",
                    point.requests,
                    point.billed_requests,
                    format_usd(point.revenue_micro_usd),
                ]
            )
    return out.getvalue().encode()


def report_routes(
    reports: LedgerReports,
    pool: Pool,
    key_names: Callable[[Iterable[str]], Awaitable[dict[str, str]]],
    *,
    clock: Callable[[], float] = time.time,
) -> list[HTTPRouteHandler]:
    """Mounted behind the admin guard that also admits console sessions; `key_names` maps key
    ids to names (stored keys, revoked ones included, and the configured ones)."""

    @get("/admin/reports/usage", name="admin_reports_usage")
    async def usage(request: AnyRequest) -> Response[bytes]:
        query = decode_query(request.query_params, UsageReportQuery)
        start, end = time_range(query.start, query.end, query.bucket, clock())
        where = UsageFilter(key_id=query.key_id, model=query.model, start=start, end=end)
        # The download holds every group on its own; the chart the top ones and the rest.
        top = 1_000_000 if query.format == "csv" else query.top
        report = await reports.usage(
            where, bucket_s=BUCKET_S[query.bucket], group_by=query.group_by, top=top
        )
        names = (
            await key_names(g.group for g in report.groups if g.group)
            if query.group_by == "key"
            else {}
        )
        body = UsageReportResponse(
            start=start,
            end=end,
            bucket=query.bucket,
            bucket_s=BUCKET_S[query.bucket],
            group_by=query.group_by,
            groups=[_group_view(g, names.get(g.group or "")) for g in report.groups],
            series=[
                UsageSeriesView(
                    group=s.group,
                    name=None if s.other else names.get(s.group or ""),
                    other=s.other,
                    points=s.points,
                )
                for s in report.series
            ],
            total=_group_view(_sum(report.groups), None),
        )
        if query.format == "csv":
            filename = f"warmgate-usage-{query.group_by}-{query.bucket}.csv"
            return Response(
                usage_csv(body),
                media_type=CSV,
                headers={"content-disposition": f'attachment; filename="{filename}"'},
            )
        return Response(_encode(body), media_type=JSON)

    @get("/admin/reports/latency", name="admin_reports_latency")
    async def latency(request: AnyRequest) -> Response[bytes]:
        query = decode_query(request.query_params, LatencyReportQuery)
        start, end = time_range(query.start, query.end, query.bucket, clock())
        where = UsageFilter(key_id=query.key_id, model=query.model, start=start, end=end)
        series = await reports.latency(
            where, bucket_s=BUCKET_S[query.bucket], group_by=query.group_by
        )
        body = LatencyReportResponse(
            start=start,
            end=end,
            bucket=query.bucket,
            bucket_s=BUCKET_S[query.bucket],
            group_by=query.group_by,
            series=series,
        )
        return Response(_encode(body), media_type=JSON)

    @get("/admin/reports/fleet", name="admin_reports_fleet")
    async def fleet(request: AnyRequest) -> Response[bytes]:
        query = decode_query(request.query_params, FleetQuery)
        traffic = await reports.backends(clock() - query.window_s)
        snapshot = pool.snapshot
        backends = []
        for described in pool.describe():
            backend = msgspec.convert(described, FleetBackend)
            seen = traffic.get(backend.id)
            if seen is not None:
                backend.traffic = BackendTrafficView(
                    requests=seen.requests,
                    server_errors=seen.server_errors,
                    prompt_tokens=seen.prompt_tokens,
                    cached_tokens=seen.cached_tokens,
                    cache_hit_rate=seen.cache_hit_rate,
                )
            backends.append(backend)
        body = FleetResponse(
            ready=pool.ready(),
            in_flight=pool.in_flight,
            window_s=query.window_s,
            models=[
                FleetModel(
                    name=entry.name,
                    policy=entry.policy,
                    backends=len(snapshot.members.get(entry.name, ())),
                    healthy=len(snapshot.healthy.get(entry.name, ())),
                )
                for entry in pool.catalog.entries
            ],
            backends=backends,
        )
        return Response(_encode(body), media_type=JSON)

    return [usage, latency, fleet]
