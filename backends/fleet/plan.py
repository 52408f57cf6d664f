"""`fleet plan`: what SkyPilot's optimizer would launch for each model, and its warm cost.

Nothing is launched: each task goes through `sky.optimize` (the API server's optimizer, with
its catalogs and enabled clouds), and the cost of keeping one replica warm is the chosen
instance's hourly price times its nodes. A model no enabled cloud can hold is reported as such.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from warmgate.backends.fleet.lineup import ModelTask
from warmgate.backends.fleet.skypilot import SkyPilot

HOURS_PER_MONTH = 730
SECONDS_PER_HOUR = 3600


@dataclass(frozen=True, slots=True)
class Choice:
    model: str
    cloud: str | None = None
    region: str | None = None
    instance_type: str | None = None
    accelerators: str | None = None
    nodes: int = 1
    usd_per_hour: float | None = None
    # Why nothing was chosen.
    problem: str | None = None


def choose(sky: SkyPilot, model: ModelTask, infra: str | None) -> Choice:
    sdk = sky.sdk
    task = sdk.Task.from_yaml(str(model.path))
    if infra is not None:
        task.set_resources_override({"infra": infra})
    with sdk.Dag() as dag:
        dag.add(task)
    try:
        optimized = sdk.get(sdk.optimize(dag))
    except sdk.exceptions.ResourcesUnavailableError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "none offered"
        return Choice(model=model.key, problem=f"no offered accelerator fits: {first_line}")
    chosen = optimized.tasks[0]
    best: Any = chosen.best_resources or next(iter(chosen.resources))
    ((accelerator, count),) = best.accelerators.items()
    nodes = int(chosen.num_nodes)
    return Choice(
        model=model.key,
        cloud=str(best.cloud),
        region=best.region,
        instance_type=best.instance_type,
        accelerators=f"{accelerator}:{int(count)}",
        nodes=nodes,
        usd_per_hour=float(best.get_cost(SECONDS_PER_HOUR)) * nodes,
    )


def render(choices: Iterable[Choice]) -> str:
    header = ("MODEL", "CLOUD", "REGION", "INSTANCE", "ACCELERATORS", "NODES", "USD/H", "USD/MONTH")
    rows: list[tuple[str, ...]] = [header]
    total = 0.0
    for c in choices:
        if c.usd_per_hour is None:
            rows.append((c.model, "-", "-", "-", "-", "-", "-", c.problem or "-"))
            continue
        total += c.usd_per_hour
        rows.append(
            (
                c.model,
                c.cloud or "-",
                c.region or "-",
                c.instance_type or "-",
                c.accelerators or "-",
                str(c.nodes),
                f"{c.usd_per_hour:.2f}",
                f"{c.usd_per_hour * HOURS_PER_MONTH:,.0f}",
            )
        )
    rows.append(
        (
            "total (one warm replica each)",
            "",
            "",
            "",
            "",
            "",
            f"{total:.2f}",
            f"{total * HOURS_PER_MONTH:,.0f}",
        )
    )
    numeric = {5, 6, 7}
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )
