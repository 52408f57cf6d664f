"""`fleet status`: the fleet's clusters, services and replicas, and what the last sync did."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from warmgate.backends.fleet.discovery import field, status_name
from warmgate.backends.fleet.lineup import Lineup
from warmgate.backends.fleet.naming import parse_cluster_name, parse_service_name
from warmgate.backends.fleet.skypilot import SkyPilot
from warmgate.backends.fleet.sync_state import read_state

HEADER = ("KIND", "NAME", "MODEL", "STATUS", "REGION", "VERSION", "URL")


def status_rows(sky: SkyPilot, lineup: Lineup, document: Path) -> Iterator[str]:
    """One line on the backends document at `document` and the last sync, then the table. The
    sync line comes first so that it is shown even when SkyPilot cannot be read."""
    yield sync_line(document)
    yield from table(sky, lineup)


def table(sky: SkyPilot, lineup: Lineup) -> Iterator[str]:
    rows: list[tuple[str, ...]] = []
    for record in sky.clusters(refresh=True):
        name = str(field(record, "name"))
        parsed = parse_cluster_name(name, lineup.keys())
        if parsed is None:
            continue
        url = sky.endpoint(name, lineup.get(parsed.model_key).port) or "-"
        region = field(record, "region") or "-"
        rows.append(
            (
                "cluster",
                name,
                parsed.model_key,
                status_name(field(record, "status")),
                str(region),
                "-",
                url,
            )
        )
    for service in sky.services():
        name = str(service.get("name"))
        parsed_service = parse_service_name(name, lineup.keys())
        if parsed_service is None:
            continue
        key = parsed_service.model_key
        active = ",".join(str(v) for v in service.get("active_versions") or ()) or "-"
        rows.append(
            (
                "service",
                name,
                key,
                status_name(service.get("status")),
                parsed_service.region or "-",
                f"active {active}",
                str(service.get("endpoint") or "-"),
            )
        )
        for replica in service.get("replica_info") or ():
            rows.append(
                (
                    "replica",
                    f"{name}/{replica.get('replica_id')}",
                    key,
                    status_name(replica.get("status")),
                    str(replica.get("region") or "-"),
                    str(replica.get("version", "-")),
                    str(replica.get("endpoint") or "-"),
                )
            )
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    for row in [HEADER, *rows]:
        yield "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()


def sync_line(document: Path) -> str:
    state = read_state(document)
    if state is None:
        return f"{document}: no sync recorded"
    version = "none" if state.document_version is None else f"version {state.document_version}"
    if state.current:
        return f"{document}: {version}, {state.backends} backends, current as of {state.checked_at}"
    return (
        f"{document}: {version} KEPT ({state.backends} backends) at {state.checked_at}: "
        f"{state.problem}"
    )
