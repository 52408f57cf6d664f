"""Every configuration under examples/ loads, and builds a gateway, as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from warmgate.proxy.http.app import create_app
from warmgate.proxy.settings import load_settings

EXAMPLES = Path(__file__).parents[2] / "examples"
ENVIRON = {
    "SGLANG_API_KEY": "sk-backend",
    "WARMGATE_ADMIN_KEY": "wg-admin",
    "WARMGATE_CI_KEY": "wg-ci",
    "WARMGATE_REDIS_URL": "redis://:password@10.0.0.9:6379/0",
    "WARMGATE_DATABASE_URL": "postgresql://warmgate:password@db/warmgate",
}


def test_the_examples_are_the_three_documented_setups() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.toml")) == [
        "fleet-edge.toml",
        "several-models.toml",
        "single-edge.toml",
    ]


@pytest.mark.parametrize("name", ["single-edge", "fleet-edge", "several-models"])
def test_an_example_loads_and_builds_a_gateway(name: str) -> None:
    settings = load_settings(EXAMPLES / f"{name}.toml", ENVIRON)
    assert settings.models
    app = create_app(settings, environ=ENVIRON)
    assert app.state.runtime.settings is settings


def test_the_fleet_edge_reads_its_store_and_redis_from_the_environment() -> None:
    settings = load_settings(EXAMPLES / "fleet-edge.toml", ENVIRON)
    assert settings.ledger_url == ENVIRON["WARMGATE_DATABASE_URL"]
    assert settings.limits.redis_url == ENVIRON["WARMGATE_REDIS_URL"]
    for path in EXAMPLES.glob("*.toml"):
        for line in path.read_text(encoding="utf-8").splitlines():
            setting = line.split("#", 1)[0]
            assert "@" not in setting, f"{path.name}: a credential in a URL: {line}"


def test_a_relative_data_dir_is_relative_to_the_example_file() -> None:
    settings = load_settings(EXAMPLES / "single-edge.toml", ENVIRON)
    assert Path(settings.data_dir) == EXAMPLES / "warmgate-data"
