"""`fleet plan` and `fleet cost` on the seeded catalogs, the SkyPilot double and a real ledger."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from tests.fleet.conftest import MODELS_DIR, REPO
from tests.fleet.skypilot_double import (
    SkyPilotDouble,
    cost_payload,
    replica_payload,
    service_payload,
)
from tests.fleet.test_optimizer import enable
from warmgate.backends.fleet.cli import Context, run
from warmgate.backends.fleet.skypilot import SkyPilot
from warmgate.proxy.ledger import LedgerRow, open_ledger_store

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
# sky/README.md's cost tables: `fleet plan` output under the clouds its first line names.
README_PLAN = re.compile(
    r"```text\n\$ warmgate fleet plan +# enabled: ([a-z, ]+)\n(.*?)\n```", re.S
)


def context(double: SkyPilotDouble) -> Context:
    return Context(
        sky=SkyPilot(double), environ={}, stdout=io.StringIO(), stop=double.stop, clock=lambda: NOW
    )


def fleet(ctx: Context, *argv: str) -> tuple[int, str]:
    code = run(["--models-dir", str(MODELS_DIR), *argv], ctx)
    assert isinstance(ctx.stdout, io.StringIO)
    return code, ctx.stdout.getvalue()


def test_plan_prints_the_optimizers_choice_and_the_warm_cost(
    sky: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    enable(sky, monkeypatch, "lambda")
    code, out = fleet(context(SkyPilotDouble(sky)), "plan")
    assert code == 0
    lines = {line.split()[0]: line.split() for line in out.splitlines()}
    assert lines["deepseek-v3-2"][1:7] == [
        "Lambda", "us-east-1", "gpu_8x_b200_sxm6", "B200:8", "1", "39.92"
    ]  # fmt: skip
    assert lines["qwen3-32b"][3:7] == ["gpu_2x_h100_sxm5", "H100:2", "1", "6.38"]
    assert lines["total"][-2:] == ["73.81", "53,881"]


def test_the_readme_cost_tables_are_what_fleet_plan_prints_on_the_seeded_catalogs(
    sky: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    tables = README_PLAN.findall((REPO / "sky" / "README.md").read_text())
    assert [clouds for clouds, _ in tables] == ["lambda", "lambda, runpod", "aws"]
    printed = {}
    for clouds in ("lambda", "lambda, runpod", "aws", "lambda, runpod, aws"):
        enable(sky, monkeypatch, *clouds.split(", "))
        code, out = fleet(context(SkyPilotDouble(sky)), "plan")
        assert code == 0
        printed[clouds] = out.rstrip("\n")
    for clouds, table in tables:
        assert printed[clouds] == table, clouds
    # "With all three enabled the optimizer keeps RunPod's offers."
    assert printed["lambda, runpod, aws"] == printed["lambda, runpod"]


def test_plan_says_when_no_offered_shape_can_hold_a_model(
    sky: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    enable(sky, monkeypatch, "lambda")
    code, out = fleet(
        context(SkyPilotDouble(sky)), "plan", "mistral-7b-instruct", "--infra",
        "lambda/europe-central-1",
    )  # fmt: skip
    assert code == 0
    assert "no offered accelerator fits" in out


async def write_ledger(url: str, rows: list[LedgerRow]) -> None:
    store = open_ledger_store(url)
    await store.start()
    try:
        await store.insert(rows)
    finally:
        await store.close()


def ledger_row(index: int, model: str, price_micro_usd: int) -> LedgerRow:
    started = NOW.timestamp() - 3600 + index
    return LedgerRow(
        request_id=f"req-{model}-{index}",
        key_id="key-1",
        model=model,
        backend="http://192.0.2.5:30000",
        endpoint="/v1/chat/completions",
        stream=False,
        started_at=started,
        finished_at=started + 1,
        status=200,
        billed=True,
        billed_reason="answered",
        price_micro_usd=price_micro_usd,
    )


def test_cost_sets_gpu_hours_against_requests_and_prints_the_break_even_price(
    sky: ModuleType, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    rows = [ledger_row(i, "qwen3-32b", 2000) for i in range(1200)]
    rows += [ledger_row(i, "mistral-7b-instruct", 500) for i in range(300)]
    asyncio.run(write_ledger(url, rows))
    double = SkyPilotDouble(
        sky,
        costs=[
            # 24 h of a 2xH100 plain cluster; a replica cluster of a consolidated controller.
            cost_payload("wg-qwen3-32b-c1", duration_s=86_400, accelerators="H100:2",
                         cost_usd=153.12),
            cost_payload("wg-mistral-7b-instruct-us-east-1-1", duration_s=43_200,
                         accelerators="L40S:1", cost_usd=10.32),
            cost_payload("notebook-alice", duration_s=86_400, accelerators="H100:8",
                         cost_usd=574.08),
        ],
        services=[
            service_payload("wg-whisper-large-v3", "READY", "http://198.51.100.1:30002",
                            [replica_payload(1, "READY", "http://203.0.113.9:30000",
                                             labels={}, cluster="wg-whisper-large-v3-1")]),
        ],
    )  # fmt: skip
    code, out = fleet(context(double), "cost", "--days", "1", "--db", url)
    assert code == 0, out
    lines = {line.split()[0]: line.split() for line in out.splitlines()}
    assert lines["qwen3-32b"][1:8] == [
        "48.0", "153.12", "1200", "1200", "2.40", "50.0", "0.127600"
    ]  # fmt: skip
    assert lines["mistral-7b-instruct"][1:4] == ["12.0", "10.32", "300"]
    assert lines["mistral-7b-instruct"][-1] == "0.034400"
    assert lines["whisper-large-v3"][2] == "0.00+?"  # a separate controller's replica
    assert "notebook-alice" not in out


def test_a_bad_command_line_is_one_line_and_status_2(
    sky: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = fleet(context(SkyPilotDouble(sky)), "cost", "--days", "zero")
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("warmgate fleet: ")
