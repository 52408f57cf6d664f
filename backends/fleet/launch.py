"""`fleet up`: a model as plain clusters or as a SkyServe service, failing fast.

A quota or capacity refusal ends the command in one line and leaves nothing running that the
command started:

- Plain clusters are launched without `retry_until_up`: SkyPilot tries each region and zone
  once and the refusal comes back as the launch request's error. The clusters this command
  started are torn down.
- A service cannot be launched that way: SkyServe launches its controller and its on-demand
  replicas with `retry_until_up=True` (`sky/serve/server/impl.py up`,
  `sky/serve/replica_managers.py launch_cluster`), so a refusal never comes back and the replica
  stays PROVISIONING while SkyServe retries. `fleet up --serve` therefore waits, up to a
  provisioning budget, for the `sky.serve.up` request to end and for the first replica to be
  provisioned (STARTING, READY or NOT_READY: its VM is up and SGLang is loading). A failed
  request, a replica or service in a failed status, or a budget spent with the replica still
  provisioning tears the service down.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from warmgate.backends.fleet.discovery import status_name
from warmgate.backends.fleet.skypilot import FleetError, SkyPilot, one_line

# A replica whose VM is up: SGLang is starting or serving.
PROVISIONED = frozenset({"STARTING", "READY", "NOT_READY"})
FAILED_REPLICA = frozenset(
    {
        "FAILED",
        "FAILED_INITIAL_DELAY",
        "FAILED_PROBING",
        "FAILED_PROVISION",
        "FAILED_CLEANUP",
        "UNKNOWN",
    }
)
# A service FAILED only says some replica failed and none is READY: the replicas decide.
FAILED_SERVICE = frozenset({"CONTROLLER_FAILED", "FAILED_CLEANUP"})
# Long enough for a GPU VM to boot and pull the SGLang image (tens of GB).
DEFAULT_PROVISION_TIMEOUT_S = 1800.0
DEFAULT_POLL_S = 15.0


class LaunchFailedError(FleetError):
    """The launch was refused or stalled; what it started is torn down (the message says)."""


@dataclass(frozen=True, slots=True)
class Pace:
    """How the service watch tells time and waits; tests hand in a clock they advance."""

    now_s: Callable[[], float]
    wait: Callable[[float], object]
    poll_s: float = DEFAULT_POLL_S


class _StalledError(Exception):
    """The budget ran out while SkyServe was still retrying."""


def infra_for(region: str | None, infra: str | None) -> str | None:
    """`--region` and `--infra` as one SkyPilot infra string."""
    if region is None:
        return infra
    if infra is None:
        return f"*/{region}"
    cloud, _, infra_region = infra.partition("/")
    if infra_region and infra_region.split("/")[0] != region:
        raise ValueError(f"--region {region} and --infra {infra} name different regions")
    return f"{cloud}/{region}"


def region_of(region: str | None, infra: str | None) -> str | None:
    """The region a service's name carries: `--region`, else the region of `--infra`."""
    if region is not None:
        return region
    parts = (infra or "").split("/")
    return parts[1] if len(parts) > 1 and parts[1] not in {"", "*"} else None


def launch_clusters(
    sky: SkyPilot, task_for: Callable[[], Any], names: Sequence[str], out: TextIO
) -> None:
    """Launch the named clusters side by side; if any launch is refused, tear down every
    cluster this call started and raise with the first refusal."""
    tasks = [(name, task_for()) for name in names]  # a missing secret stops us before any launch
    requests = [(name, sky.launch(task, name, wait=False)) for name, task in tasks]
    failed: tuple[str, BaseException] | None = None
    for name, request_id in requests:
        try:
            sky.wait(request_id)
        except Exception as exc:  # noqa: BLE001 - a refusal ends `up`: one line, no half fleet
            failed = failed or (name, exc)
            continue
        print(f"{name}: launched", file=out)
    if failed is None:
        return
    for name, _ in requests:
        sky.down(name)
        print(f"{name}: down (the launch of {failed[0]} failed)", file=out)
    raise LaunchFailedError(f"{failed[0]}: {one_line(failed[1])}")


def start_service(
    sky: SkyPilot, task: Any, name: str, *, timeout_s: float, pace: Pace, out: TextIO
) -> Mapping[str, Any]:
    """`sky.serve.up`, then wait for the first provisioned replica (returned). Raises
    `LaunchFailedError` after tearing the service down when it fails or stalls."""
    if _service(sky, name) is not None:
        raise FleetError(f"{name} exists: `warmgate fleet update` rolls a new version into it")
    deadline_s = pace.now_s() + timeout_s
    request_id = sky.serve_up_request(task, name)
    print(f"{name}: starting (up to {timeout_s:.0f} s for its first replica)", file=out)
    try:
        while not sky.request_finished(request_id):
            if pace.now_s() >= deadline_s:
                sky.cancel_request(request_id)
                raise _StalledError("the SkyServe controller did not come up")
            pace.wait(pace.poll_s)
        sky.result(request_id)
        return _first_replica(sky, name, deadline_s, pace)
    except _StalledError as exc:
        problem = (
            f"{exc} within {timeout_s:.0f} s: SkyServe retries capacity and quota refusals"
            f" until up (`sky serve logs --controller {name}`)"
        )
        raise LaunchFailedError(f"{name}: {problem}; {_tear_down(sky, name, out)}") from None
    except Exception as exc:
        reason = str(exc) if isinstance(exc, LaunchFailedError) else one_line(exc)
        raise LaunchFailedError(f"{name}: {reason}; {_tear_down(sky, name, out)}") from exc


def _first_replica(sky: SkyPilot, name: str, deadline_s: float, pace: Pace) -> Mapping[str, Any]:
    while True:
        service = _service_or_none(sky, name)
        if service is not None:
            status = status_name(service.get("status"))
            if status in FAILED_SERVICE:
                raise LaunchFailedError(f"service {status}")
            replicas: list[Mapping[str, Any]] = list(service.get("replica_info") or ())
            statuses = [status_name(replica.get("status")) for replica in replicas]
            # One replica up is a service up: SkyServe keeps retrying the others.
            for replica, replica_status in zip(replicas, statuses, strict=True):
                if replica_status in PROVISIONED:
                    return replica
            for replica, replica_status in zip(replicas, statuses, strict=True):
                if replica_status in FAILED_REPLICA:
                    replica_id = replica.get("replica_id")
                    raise LaunchFailedError(
                        f"replica {replica_id} {replica_status}"
                        f" (`sky serve logs {name} {replica_id}` says why)"
                    )
        if pace.now_s() >= deadline_s:
            raise _StalledError("no replica provisioned")
        pace.wait(pace.poll_s)


def _service(sky: SkyPilot, name: str) -> Mapping[str, Any] | None:
    return next((s for s in sky.services() if str(s.get("name")) == name), None)


def _service_or_none(sky: SkyPilot, name: str) -> Mapping[str, Any] | None:
    """The service as SkyServe reports it; None while that cannot be read (its controller is
    still starting, or the API server blinked): the watch asks again."""
    try:
        return _service(sky, name)
    except Exception:  # noqa: BLE001 - no news is not a verdict; the deadline decides
        return None


def _tear_down(sky: SkyPilot, name: str, out: TextIO) -> str:
    """`sky serve down` the service; says what became of it. Its controller is SkyServe's,
    shared by every service, and stays."""
    try:
        sky.serve_down(name)
    except Exception as exc:  # noqa: BLE001 - reported with the failure that caused it
        return f"tear-down failed: {one_line(exc)}"
    print(f"{name}: down", file=out)
    return "torn down"
