"""Fixtures for the fleet tests: SkyPilot 0.14.1 imported once per session, offline.

SkyPilot reads its catalogs from `$SKY_RUNTIME_DIR/.sky/catalogs/v8/` and fetches a missing
one from GitHub. The session seeds that directory with the small CSV files in `catalogs/`
(files without `.meta/*.md5` count as user-provided and are never refetched), and keeps
SkyPilot away from the user's config and from usage reporting. SkyPilot resolves the catalog
directory when it is imported, so `sky` is imported here, after the environment is set, and
the tests get it from the `sky` fixture.
"""

from __future__ import annotations

import shutil
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

CATALOGS = Path(__file__).parent / "catalogs"
REPO = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO / "sky" / "models"


@pytest.fixture(scope="session")
def sky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    if "sky" in sys.modules:
        pytest.fail("sky was imported before the fleet fixtures could point it at test catalogs")
    runtime = tmp_path_factory.mktemp("sky-runtime")
    shutil.copytree(CATALOGS, runtime / ".sky" / "catalogs" / "v8")
    empty_config = runtime / "config.yaml"
    empty_config.write_text("{}\n")
    patch = pytest.MonkeyPatch()
    patch.setenv("SKY_RUNTIME_DIR", str(runtime))
    patch.setenv("SKYPILOT_GLOBAL_CONFIG", str(empty_config))
    patch.setenv("SKYPILOT_DISABLE_USAGE_COLLECTION", "1")
    try:
        # SkyPilot's own imports warn about their dependencies (SQLAlchemy 2.0 moves);
        # those warnings are SkyPilot's to fix, not ours to fail on.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Imported here, only once the environment points at the test catalogs.
            import sky.serve  # noqa: PLC0415
            from sky.catalog import common  # noqa: PLC0415

            sky = sys.modules["sky"]

        catalog = Path(common.get_catalog_path("lambda/vms.csv"))
        assert catalog.is_relative_to(runtime), catalog
        yield sky
    finally:
        patch.undo()


@pytest.fixture
def models_dir() -> Path:
    return MODELS_DIR


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
