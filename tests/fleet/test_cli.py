"""`warmgate fleet up | status | down | sync` against SkyPilot's SDK surface."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.fleet.conftest import MODELS_DIR
from tests.fleet.skypilot_double import (
    SkyPilotDouble,
    cluster_payload,
    replica_payload,
    service_payload,
)
from warmgate.backends.fleet.cli import Context, run
from warmgate.backends.fleet.document import read_document
from warmgate.backends.fleet.skypilot import SkyPilot
from warmgate.proxy.cli import main as warmgate_main

SECRETS = {"HF_TOKEN": "hf_canary_77", "SGLANG_API_KEY": "sk_canary_77"}


class FakeTime:
    """The command's clock; its waits move the clock on instead of sleeping."""

    def __init__(self) -> None:
        self.at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
        self.waited_s = 0.0

    def now(self) -> datetime:
        return self.at

    def wait(self, seconds: float) -> bool:
        self.at += timedelta(seconds=seconds)
        self.waited_s += seconds
        return False


def context(
    double: SkyPilotDouble, environ: dict[str, str] | None = None, time: FakeTime | None = None
) -> Context:
    time = time or FakeTime()
    return Context(
        sky=SkyPilot(double),
        environ=SECRETS if environ is None else environ,
        stdout=io.StringIO(),
        stop=double.stop,
        clock=time.now,
        wait=time.wait,
    )


def fleet(ctx: Context, *argv: str) -> int:
    return run(["--models-dir", str(MODELS_DIR), *argv], ctx)


def output(ctx: Context) -> str:
    assert isinstance(ctx.stdout, io.StringIO)
    return ctx.stdout.getvalue()


SERVICE = "wg-qwen3-32b-us-east-1"


def service_with(*statuses: str, status: str = "REPLICA_INIT") -> list[dict[str, Any]]:
    """`sky.serve.status` while the new service's replicas are in these statuses."""
    replicas = [
        replica_payload(i, s, None, labels={}, cluster=f"{SERVICE}-{i}")
        for i, s in enumerate(statuses, start=1)
    ]
    return [service_payload(SERVICE, status, "http://198.51.100.1:30002", replicas)]


def up_serve(double: SkyPilotDouble, time: FakeTime, *extra: str) -> tuple[int, Context]:
    ctx = context(double, time=time)
    argv = ["up", "qwen3-32b", "--region", "us-east-1", "--provision-timeout", "600", *extra]
    return fleet(ctx, *argv), ctx


def test_up_serves_a_model_as_a_skyserve_service_with_the_minimum_replicas(
    sky: ModuleType,
) -> None:
    double = SkyPilotDouble(sky)
    double.services_script = [[], service_with("PROVISIONING"), service_with("STARTING")]
    time = FakeTime()
    code, ctx = up_serve(double, time, "--replicas", "3", "--infra", "lambda")
    assert code == 0
    ((name, task),) = double.served
    assert name == SERVICE
    assert task.service.min_replicas == 3
    assert task.service.max_replicas >= 3
    assert {str(r.cloud) for r in task.resources} == {"Lambda"}
    assert {r.region for r in task.resources} == {"us-east-1"}
    assert f"{SERVICE}: replica 1 provisioned on Lambda us-east-1" in output(ctx)
    assert double.downed == []


def test_up_serve_that_never_gets_capacity_is_torn_down_within_its_budget_in_one_line(
    sky: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    # SkyServe launches replicas with retry_until_up: a capacity refusal leaves it PROVISIONING.
    double = SkyPilotDouble(sky)
    double.services_script = [[], service_with("PENDING"), service_with("PROVISIONING")]
    time = FakeTime()
    code, _ = up_serve(double, time)
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"warmgate fleet: {SERVICE}: no replica provisioned within 600 s")
    assert "torn down" in err
    assert double.downed == [SERVICE]
    assert 600 <= time.waited_s < 600 + 15  # waited out the budget, polling, and no longer


def test_up_serve_whose_replica_fails_to_provision_is_torn_down_at_once(
    sky: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    double = SkyPilotDouble(sky)
    double.services_script = [
        [],
        service_with("PROVISIONING"),
        service_with("FAILED_PROVISION", status="FAILED"),
    ]
    time = FakeTime()
    code, _ = up_serve(double, time)
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{SERVICE}: replica 1 FAILED_PROVISION (`sky serve logs {SERVICE} 1`" in err
    assert double.downed == [SERVICE]
    assert time.waited_s == 15  # one poll interval, not the budget


def test_up_serve_names_the_failed_replica_while_the_service_still_initialises(
    sky: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    double = SkyPilotDouble(sky)
    double.services_script = [[], service_with("PROVISIONING", "FAILED_PROVISION")]
    code, _ = up_serve(double, FakeTime())
    assert code == 1
    err = capsys.readouterr().err
    assert f"replica 2 FAILED_PROVISION (`sky serve logs {SERVICE} 2` says why); torn down" in err
    assert double.downed == [SERVICE]


def test_up_serve_with_one_replica_up_succeeds_while_skyserve_retries_another(
    sky: ModuleType,
) -> None:
    double = SkyPilotDouble(sky)
    # SkyServe calls such a service FAILED: one replica failed and none is READY yet.
    double.services_script = [[], service_with("FAILED_PROVISION", "STARTING", status="FAILED")]
    code, ctx = up_serve(double, FakeTime(), "--replicas", "2")
    assert code == 0
    assert f"{SERVICE}: replica 2 provisioned" in output(ctx)
    assert double.downed == []


def test_up_serve_whose_controller_never_comes_up_cancels_the_request_and_tears_down(
    sky: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    double = SkyPilotDouble(sky, serve_up_running_polls=None)
    code, _ = up_serve(double, FakeTime())
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "the SkyServe controller did not come up within 600 s" in err
    assert len(double.cancelled_requests) == 1
    assert double.downed == [SERVICE]


def test_up_serve_refused_by_skypilot_is_one_line_naming_the_error(
    sky: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    refusal = sky.exceptions.ResourcesUnavailableError(
        "Failed to provision all possible launchable resources.\nquota exceeded: ..."
    )
    double = SkyPilotDouble(sky, serve_up_error=refusal, serve_up_running_polls=2)
    code, _ = up_serve(double, FakeTime())
    assert code == 1
    err = capsys.readouterr().err
    assert err == (
        f"warmgate fleet: {SERVICE}: SkyPilot: ResourcesUnavailableError: Failed to provision all"
        " possible launchable resources.; torn down\n"
    )
    assert double.downed == [SERVICE]


def test_up_serve_whose_controller_failed_is_torn_down(
    sky: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    double = SkyPilotDouble(sky)
    double.services_script = [[], service_with(status="CONTROLLER_FAILED")]
    code, _ = up_serve(double, FakeTime())
    assert code == 1
    assert f"{SERVICE}: service CONTROLLER_FAILED; torn down" in capsys.readouterr().err
    assert double.downed == [SERVICE]


def test_up_serve_leaves_an_existing_service_alone(
    sky: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    double = SkyPilotDouble(sky, services=service_with("READY", status="READY"))
    code, _ = up_serve(double, FakeTime())
    assert code == 1
    assert "exists: `warmgate fleet update`" in capsys.readouterr().err
    assert double.served == []
    assert double.downed == []


def test_up_cluster_launches_the_missing_numbered_clusters_only(sky: ModuleType) -> None:
    double = SkyPilotDouble(sky, clusters=[cluster_payload("wg-mistral-7b-instruct-c1")])
    ctx = context(double)
    assert fleet(ctx, "up", "mistral-7b-instruct", "--cluster", "--replicas", "3") == 0
    assert [name for name, _ in double.launched] == [
        "wg-mistral-7b-instruct-c2",
        "wg-mistral-7b-instruct-c3",
    ]
    assert "wg-mistral-7b-instruct-c1: exists" in output(ctx)


def test_up_cluster_refused_tears_down_what_it_started_in_one_line(
    sky: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    refusal = sky.exceptions.ResourcesUnavailableError("Failed to provision: no capacity")
    double = SkyPilotDouble(sky, launch_errors={"wg-mistral-7b-instruct-c2": refusal})
    ctx = context(double)
    assert fleet(ctx, "up", "mistral-7b-instruct", "--cluster", "--replicas", "2") == 1
    err = capsys.readouterr().err
    assert err == (
        "warmgate fleet: wg-mistral-7b-instruct-c2: SkyPilot: ResourcesUnavailableError:"
        " Failed to provision: no capacity\n"
    )
    assert double.downed == ["wg-mistral-7b-instruct-c1", "wg-mistral-7b-instruct-c2"]


def test_up_without_the_secrets_fails_naming_them_and_launches_nothing(
    sky: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    double = SkyPilotDouble(sky)
    ctx = context(double, environ={"HF_TOKEN": "hf_canary_77"})
    assert fleet(ctx, "up", "qwen3-32b") == 1
    error = capsys.readouterr().err
    assert "SGLANG_API_KEY" in error
    assert "hf_canary_77" not in error
    assert double.served == []


def test_up_refuses_zero_replicas_because_the_fleet_never_scales_to_zero(
    sky: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fleet(context(SkyPilotDouble(sky)), "up", "qwen3-32b", "--replicas", "0") == 2
    assert "never scales to zero" in capsys.readouterr().err


def test_an_unknown_model_is_an_error_that_lists_the_lineup(
    sky: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fleet(context(SkyPilotDouble(sky)), "up", "gpt-5") == 1
    assert "qwen3-32b" in capsys.readouterr().err


def test_status_lists_our_clusters_services_and_replicas_only(sky: ModuleType) -> None:
    double = SkyPilotDouble(
        sky,
        clusters=[cluster_payload("wg-qwen3-32b-c1"), cluster_payload("notebook-alice")],
        addresses={"wg-qwen3-32b-c1": "192.0.2.5:30000"},
        services=[
            service_payload(
                "wg-qwen3-32b",
                "READY",
                "http://198.51.100.1:30002",
                [replica_payload(1, "READY", "http://203.0.113.7:30000")],
            )
        ],
    )
    ctx = context(double)
    assert fleet(ctx, "status") == 0
    sync_line, *lines = output(ctx).splitlines()
    assert sync_line == "backends.json: no sync recorded"
    assert lines[0].split() == ["KIND", "NAME", "MODEL", "STATUS", "REGION", "VERSION", "URL"]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["cluster", "wg-qwen3-32b-c1", "qwen3-32b", "UP"],
        ["service", "wg-qwen3-32b", "qwen3-32b", "READY"],
        ["replica", "wg-qwen3-32b/1", "qwen3-32b", "READY"],
    ]
    assert "192.0.2.5:30000" in lines[1]


def test_down_tears_down_a_models_clusters_and_service_and_nothing_else(sky: ModuleType) -> None:
    double = SkyPilotDouble(
        sky,
        clusters=[
            cluster_payload("wg-qwen3-32b-c1"),
            cluster_payload("wg-qwen3-32b-c2", "STOPPED"),
            cluster_payload("wg-mistral-7b-instruct-c1"),
            cluster_payload("notebook-alice"),
        ],
        services=[service_payload("wg-qwen3-32b", "READY", "http://198.51.100.1:30002", [])],
    )
    assert fleet(context(double), "down", "qwen3-32b") == 0
    assert double.downed == ["wg-qwen3-32b-c1", "wg-qwen3-32b-c2", "wg-qwen3-32b"]


def test_down_needs_models_or_all(sky: ModuleType) -> None:
    double = SkyPilotDouble(sky, clusters=[cluster_payload("wg-qwen3-32b-c1")])
    assert fleet(context(double), "down") == 2
    assert double.downed == []


def test_sync_writes_the_document_and_reports_its_version(sky: ModuleType, tmp_path: Path) -> None:
    double = SkyPilotDouble(
        sky,
        clusters=[cluster_payload("wg-qwen3-32b-c1")],
        addresses={"wg-qwen3-32b-c1": "192.0.2.5:30000"},
    )
    out = tmp_path / "state" / "backends.json"
    ctx = context(double)
    assert fleet(ctx, "sync", "--out", str(out), "--api-key-env", "QWEN_KEY") == 0
    document = read_document(out)
    assert document is not None
    assert [(b.model, b.url, b.api_key_env) for b in document.backends] == [
        ("qwen3-32b", "http://192.0.2.5:30000", "QWEN_KEY")
    ]
    assert f"{out}: version 1" in output(ctx)
    assert fleet(ctx, "sync", "--out", str(out)) == 0
    assert f"{out}: version 2" in output(ctx)  # another key variable is another document


def test_sync_watch_keeps_the_named_clusters_and_stops_when_asked(
    sky: ModuleType, tmp_path: Path
) -> None:
    double = SkyPilotDouble(sky, clusters=[], stop_after_status_calls=1)
    out = tmp_path / "backends.json"
    ctx = context(double)
    code = fleet(ctx, "sync", "--out", str(out), "--watch", "30", "--keep", "whisper-large-v3=1")
    assert code == 0
    assert [name for name, _ in double.launched] == ["wg-whisper-large-v3-c1"]
    assert read_document(out) is not None


def test_an_edge_watch_never_launches_anything(sky: ModuleType, tmp_path: Path) -> None:
    double = SkyPilotDouble(
        sky, clusters=[cluster_payload("wg-qwen3-32b-c1", "STOPPED")], stop_after_status_calls=1
    )
    out = tmp_path / "backends.json"
    assert fleet(context(double), "sync", "--out", str(out), "--watch", "5", "--no-relaunch") == 0
    assert double.launched == []


def test_warmgate_dispatches_fleet_to_this_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        warmgate_main(["fleet", "--help"])
    assert exit_info.value.code == 0
    assert "sync" in capsys.readouterr().out


def test_an_unreachable_api_server_ends_the_command_with_its_message(
    sky: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    double = SkyPilotDouble(sky)
    double.status_error = sky.exceptions.ApiServerConnectionError("http://127.0.0.1:46580")
    assert fleet(context(double), "sync", "--out", str(tmp_path / "backends.json")) == 1
    assert "ApiServerConnectionError" in capsys.readouterr().err
    assert not (tmp_path / "backends.json").exists()
