"""The limit rules as pure functions of a key, a model, the time and the key's counters.

Windows are fixed and aligned to the UTC clock so that every edge sharing Redis agrees on them:
requests per minute count in the minute `floor(now / 60)`; a quota counts in the UTC day or month.
A limiter reads the counters, asks `refusal_for`, and counts the request only when it is admitted.
"""

from __future__ import annotations

import datetime as dt
import enum
import math

import msgspec

from warmgate.proxy.errors import GatewayError, QuotaExceeded, RateLimited
from warmgate.proxy.keys.key import Key, QuotaPeriod

MINUTE_S = 60.0
MAX_RETRY_AFTER_S = 60  # SDKs honour Retry-After up to 60 s (node, python 1.x) or 120 s
CONCURRENCY_RETRY_AFTER_S = 1

Headers = list[tuple[str, str]]


class Counters(msgspec.Struct, frozen=True):
    """A key's usage in its current windows (before the request being decided)."""

    rpm_used: int = 0
    concurrent: int = 0
    quota_used: int = 0


class Windows(msgspec.Struct, frozen=True):
    """The time frames a request falls in: its minute, and its key's quota period if any."""

    minute: int
    minute_reset_s: float
    quota_label: str | None = None
    quota_reset_s: float = 0.0


class WindowClock:
    """Computes `Windows` at a time, keeping each period's calendar bounds until they pass (a
    calendar computation costs more than the rest of a limit check)."""

    def __init__(self) -> None:
        self._bounds: dict[str, tuple[str, float, float]] = {}

    def at(self, now: float, period: QuotaPeriod | None) -> Windows:
        minute, minute_reset_s = minute_window(now)
        if period is None:
            return Windows(minute, minute_reset_s)
        bounds = self._bounds.get(period)
        if bounds is None or not bounds[1] <= now < bounds[2]:
            bounds = self._bounds[period] = quota_period_bounds(now, period)
        return Windows(minute, minute_reset_s, bounds[0], bounds[2] - now)


class Refusal(enum.Enum):
    QUOTA = "quota"
    CONCURRENCY = "concurrency"
    RPM = "rpm"


def minute_window(now: float) -> tuple[int, float]:
    """(window number, seconds until it ends) for the requests-per-minute window at `now`."""
    window = math.floor(now / MINUTE_S)
    return window, (window + 1) * MINUTE_S - now


def quota_window(now: float, period: QuotaPeriod) -> tuple[str, float]:
    """(period label such as `2026-11-28` or `2026-11`, seconds until the next period)."""
    label, _, end = quota_period_bounds(now, period)
    return label, end - now


def quota_period_bounds(now: float, period: QuotaPeriod) -> tuple[str, float, float]:
    """(label, start, end) of the UTC day or month holding `now`, in unix seconds."""
    moment = dt.datetime.fromtimestamp(now, tz=dt.UTC)
    if period == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + dt.timedelta(days=1)
        return start.strftime("%Y-%m-%d"), start.timestamp(), end.timestamp()
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if start.month == 12:
        end = start.replace(year=start.year + 1, month=1)
    else:
        end = start.replace(month=start.month + 1)
    return start.strftime("%Y-%m"), start.timestamp(), end.timestamp()


def go_duration(seconds: float) -> str:
    """OpenAI's reset format, Go's Duration.String to the millisecond: `20ms`, `1s`, `6m0s`."""
    if seconds >= 1 and seconds == int(seconds) and seconds < 3600:
        whole = int(seconds)
        return f"{whole}s" if whole < 60 else f"{whole // 60}m{whole % 60}s"
    millis = max(0, round(seconds * 1000))
    if millis < 1000:
        return f"{millis}ms" if millis else "0s"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, frac = divmod(rest, 1000)
    text = f"{secs}.{frac:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def refusal_for(key: Key, counters: Counters) -> Refusal | None:
    """None when the request may go ahead; otherwise the first limit it breaks. (Which models
    a key may use is authorization, checked before any limit, whatever `[limits]` says.)"""
    if key.quota is not None and key.quota_period is not None and counters.quota_used >= key.quota:
        return Refusal.QUOTA
    if key.max_concurrency is not None and counters.concurrent >= key.max_concurrency:
        return Refusal.CONCURRENCY
    if key.rpm is not None and counters.rpm_used >= key.rpm:
        return Refusal.RPM
    return None


def with_default_rpm(key: Key, default_rpm: int | None) -> Key:
    """The key as the limiter sees it: one with neither an rpm nor a quota of its own gets
    `default_rpm`, so that every key has a request window to count and to show."""
    if not default_rpm or key.rpm is not None:
        return key
    if key.quota is not None and key.quota_period is not None:
        return key
    return msgspec.structs.replace(key, rpm=default_rpm)


def has_limits(key: Key) -> bool:
    return (
        key.rpm is not None
        or key.max_concurrency is not None
        or (key.quota is not None and key.quota_period is not None)
    )


def ratelimit_headers(key: Key, windows: Windows, counters: Counters) -> Headers:
    """`x-ratelimit-*-requests` for the key's request window: per minute, else its quota.

    `counters` are those after the request was counted. A key with neither limit gets none.
    The reset is given in whole seconds, rounded up.
    """
    if key.rpm is not None:
        reset_s = windows.minute_reset_s
        limit, used = key.rpm, counters.rpm_used
    elif key.quota is not None and key.quota_period is not None:
        reset_s = windows.quota_reset_s
        limit, used = key.quota, counters.quota_used
    else:
        return []
    return [
        ("x-ratelimit-limit-requests", str(limit)),
        ("x-ratelimit-remaining-requests", str(max(0, limit - used))),
        ("x-ratelimit-reset-requests", go_duration(math.ceil(reset_s))),
    ]


def refusal_error(refusal: Refusal, key: Key, windows: Windows, counters: Counters) -> GatewayError:
    """The OpenAI-shaped 429 with its headers."""
    headers = dict(ratelimit_headers(key, windows, counters))
    if refusal is Refusal.QUOTA:
        reset_s = windows.quota_reset_s
        headers["retry-after"] = str(_retry_after(reset_s))
        headers["x-should-retry"] = "false"  # retrying cannot help until the period ends
        return QuotaExceeded(
            f"You exceeded your request quota of {key.quota} per {key.quota_period}; "
            f"it resets in {go_duration(math.ceil(reset_s))}.",
            headers=headers,
        )
    if refusal is Refusal.CONCURRENCY:
        headers["retry-after"] = str(CONCURRENCY_RETRY_AFTER_S)
        return RateLimited(
            f"Rate limit reached for concurrent requests: limit {key.max_concurrency}, "
            f"in flight {counters.concurrent}. Please try again in 1s.",
            limit="concurrency",
            headers=headers,
        )
    reset_s = windows.minute_reset_s
    headers["retry-after"] = str(_retry_after(reset_s))
    return RateLimited(
        f"Rate limit reached for requests per min (RPM): limit {key.rpm}, used "
        f"{counters.rpm_used}. Please try again in {go_duration(reset_s)}.",
        limit="rpm",
        headers=headers,
    )


def _retry_after(reset_s: float) -> int:
    return max(1, min(MAX_RETRY_AFTER_S, math.ceil(reset_s)))
