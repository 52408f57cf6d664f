"""The naming convention and the small pure pieces of discovery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from warmgate.backends.fleet.discovery import accelerators_label, http_url
from warmgate.backends.fleet.document import FleetBackend, next_document
from warmgate.backends.fleet.naming import (
    ClusterName,
    ServiceName,
    cluster_name,
    parse_cluster_name,
    parse_replica_cluster,
    parse_service_name,
    service_name,
)

KEYS = ["deepseek-v3", "deepseek-v3-2", "qwen3-32b"]


def test_cluster_names_round_trip_even_for_keys_ending_in_digits() -> None:
    for key in KEYS:
        for index in (1, 2, 12):
            assert parse_cluster_name(cluster_name(key, index), KEYS) == ClusterName(key, index)


@pytest.mark.parametrize(
    "name",
    [
        "wg-qwen3-32b",  # the service, not a cluster
        "wg-qwen3-32b-3",  # a SkyServe replica cluster
        "wg-qwen3-32b-c0",
        "wg-qwen3-32b-c01",
        "wg-qwen3-32b-c",
        "wg-qwen3-32b-c٣",  # a non-ASCII digit
        "wg-llama-c1",  # not in the lineup
        "qwen3-32b-c1",
    ],
)
def test_names_outside_the_convention_are_not_ours(name: str) -> None:
    assert parse_cluster_name(name, KEYS) is None


def test_services_are_named_after_the_model_key_and_region() -> None:
    assert service_name("qwen3-32b") == "wg-qwen3-32b"
    assert service_name("qwen3-32b", "US") == "wg-qwen3-32b-us"
    assert service_name("deepseek-v3", "eu-west-2") == "wg-deepseek-v3-eu-west-2"
    assert parse_service_name("wg-deepseek-v3-2", KEYS) == ServiceName("deepseek-v3-2", None)
    assert parse_service_name("wg-deepseek-v3-eu-west-2", KEYS) == ServiceName(
        "deepseek-v3", "eu-west-2"
    )
    assert parse_service_name("wg-deepseek-v3-2-us-east-1", KEYS) == ServiceName(
        "deepseek-v3-2", "us-east-1"
    )
    assert parse_service_name("wg-deepseek-v3-2-c1", KEYS) is None
    assert parse_service_name("wg-qwen3-32b-3", KEYS) is None  # a replica's cluster
    assert parse_replica_cluster("wg-qwen3-32b-us-east-1-3", KEYS) == ServiceName(
        "qwen3-32b", "us-east-1"
    )
    assert parse_replica_cluster("wg-qwen3-32b-c1", KEYS) is None
    with pytest.raises(ValueError, match="service name"):
        service_name("qwen3-32b", "us east")
    with pytest.raises(ValueError, match="starts at 1"):
        cluster_name("qwen3-32b", 0)


@pytest.mark.parametrize(
    ("value", "label"),
    [
        ("{'H100': 8}", "H100:8"),
        ({"A10": 1.0}, "A10:1"),
        ({"L4": 1, "T4": 2}, "L4:1,T4:2"),
        ("H100:8", "H100:8"),
        (None, None),
        ("", None),
    ],
)
def test_accelerators_read_the_way_skypilot_reports_them(value: object, label: str | None) -> None:
    assert accelerators_label(value) == label


def test_endpoints_without_a_scheme_get_http() -> None:
    assert http_url("1.2.3.4:30000") == "http://1.2.3.4:30000"
    assert http_url("https://replica.example.com/") == "https://replica.example.com"


def backend(url: str) -> FleetBackend:
    return FleetBackend(
        model="m", url=url, api_key_env="K", cloud=None, region=None, accelerators=None, source="s"
    )


def test_the_document_is_ordered_deduplicated_and_stamped_in_utc() -> None:
    now = datetime(2026, 11, 28, 13, 0, tzinfo=timezone(timedelta(hours=2)))
    document = next_document(
        None, [backend("http://b"), backend("http://a"), backend("http://b")], now
    )
    assert document is not None
    assert [b.url for b in document.backends] == ["http://a", "http://b"]
    assert document.generated_at == "2026-11-28T11:00:00Z"
    assert (
        next_document(document, [backend("http://a"), backend("http://b")], datetime.now(UTC))
        is None
    )
