"""Metrics as data, merged across the workers of an edge and rendered in Prometheus' text format.

A snapshot is a list of `FamilyData`: each family's samples with their full label sets, the
histograms already cumulative (`_bucket`, `_sum`, `_count`). Every worker renders the same
families with the same bounds, so merging is a sum per sample; a gauge that may not be summed
says so (`max`, `min`) or arrives with a `worker` label of its own. Snapshots travel between
workers as msgpack (`encode_snapshot`, `decode_snapshot`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import msgspec

# The per-key families: rendered for the busiest keys only (by requests), after merging.
KEY_FAMILY_PREFIX = "warmgate_key_"
KEY_REQUESTS = "warmgate_key_requests_total"

Labels = tuple[tuple[str, str], ...]


class SampleData(msgspec.Struct, array_like=True, frozen=True):
    suffix: str  # "", or "_bucket", "_sum", "_count" of a histogram
    labels: Labels
    value: float


class FamilyData(msgspec.Struct, array_like=True):
    name: str
    help: str
    type: str
    samples: list[SampleData]
    merge: str = "sum"  # how equal samples of several workers combine: sum, max or min


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[FamilyData])


def encode_snapshot(families: list[FamilyData]) -> bytes:
    return _encoder.encode(families)


def decode_snapshot(data: bytes) -> list[FamilyData]:
    return _decoder.decode(data)


def merge(snapshots: Iterable[Sequence[FamilyData]]) -> list[FamilyData]:
    """One snapshot of the edge: families in first-seen order, equal samples combined."""
    merged: dict[str, tuple[FamilyData, dict[tuple[str, Labels], float]]] = {}
    for snapshot in snapshots:
        for family in snapshot:
            entry = merged.get(family.name)
            if entry is None:
                entry = merged[family.name] = (family, {})
            values = entry[1]
            combine = _COMBINE.get(family.merge, _sum)
            for sample in family.samples:
                at = (sample.suffix, sample.labels)
                known = values.get(at)
                values[at] = sample.value if known is None else combine(known, sample.value)
    return [
        FamilyData(
            first.name,
            first.help,
            first.type,
            [SampleData(suffix, labels, value) for (suffix, labels), value in values.items()],
            first.merge,
        )
        for first, values in merged.values()
    ]


def cut_top_keys(families: list[FamilyData], top: int) -> list[FamilyData]:
    """The per-key families restricted to the `top` keys with the most requests, so that the
    number of series stays bounded however many keys there are."""
    requests = next((f for f in families if f.name == KEY_REQUESTS), None)
    if requests is None:
        return families
    ranked = sorted(requests.samples, key=lambda s: (-s.value, s.labels))
    kept = {sample.labels for sample in ranked[:top]}
    return [
        FamilyData(f.name, f.help, f.type, [s for s in f.samples if s.labels in kept], f.merge)
        if f.name.startswith(KEY_FAMILY_PREFIX)
        else f
        for f in families
    ]


def render_families(families: Iterable[FamilyData]) -> str:
    out: list[str] = []
    for family in families:
        name = family.name
        out.append(f"# HELP {name} {family.help}\n# TYPE {name} {family.type}\n")
        out.extend(
            f"{name}{s.suffix}{format_labels(s.labels)} {format_number(s.value)}\n"
            for s in family.samples
        )
    return "".join(out)


def format_labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels)
    return "{" + inner + "}"


def format_number(value: float) -> str:
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sum(a: float, b: float) -> float:
    return a + b


_COMBINE: dict[str, Callable[[float, float], float]] = {"sum": _sum, "max": max, "min": min}
