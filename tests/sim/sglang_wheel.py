"""SGLang 0.5.23's own wire classes, loaded from its wheel, to hold the simulator to them.

The wheel (about 40 MB) is downloaded once with pip into `build/sglang-wheel/` (git-ignored,
removed by `make clean`); the files read are extracted beside it and loaded by path. Neither
module is imported as SGLang runs it: the few SGLang modules they import at the top (a JSON
helper, runtime settings) are stand-ins registered under a private package name, so torch and
the rest of the engine are never loaded. Nothing else of the wheel runs.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

VERSION = "0.5.23"
ROOT = Path(__file__).parents[2]
CACHE = ROOT / "build" / "sglang-wheel"
# One wheel whatever the interpreter: only its Python sources are read.
WHEEL_TAGS = ["--only-binary=:all:", "--python-version", "3.11", "--platform",
              "manylinux_2_34_x86_64", "--implementation", "cp"]  # fmt: skip
PROTOCOL = "sglang/srt/entrypoints/openai/protocol.py"
LOAD_SNAPSHOT = "sglang/srt/managers/load_snapshot.py"
STAND_IN = "_sglang_stand_in"


def wheel() -> Path:
    """The downloaded wheel, fetched with pip on first use."""
    found = sorted(CACHE.glob(f"sglang-{VERSION}-*.whl"))
    if found:
        return found[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", f"sglang=={VERSION}", "--no-deps",
               *WHEEL_TAGS, "--quiet", "--dest", str(CACHE)]  # fmt: skip
    subprocess.run(command, check=True, timeout=600)  # noqa: S603 - pip, fixed arguments
    found = sorted(CACHE.glob(f"sglang-{VERSION}-*.whl"))
    assert found, f"pip downloaded no sglang {VERSION} wheel into {CACHE}"
    return found[0]


def _extract(member: str) -> Path:
    target = CACHE / "src" / member
    if not target.exists():
        with zipfile.ZipFile(wheel()) as archive:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
    return target


class _StandIn(types.ModuleType):
    """A module whose every attribute is a do-nothing callable (for import-time names only)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None


def _stand_ins(names: dict[str, dict[str, Any]]) -> dict[str, types.ModuleType]:
    modules: dict[str, types.ModuleType] = {}
    for name, attributes in names.items():
        module = _StandIn(name)
        module.__dict__.update(attributes)
        modules[name] = module
    return modules


def _schema_text(schema: Any) -> str:
    """sglang.utils.convert_json_schema_to_str: a schema as the JSON text grammars are keyed by."""
    return schema if isinstance(schema, str) else json.dumps(schema)


def _load(member: str, alias: str, stand_ins: dict[str, dict[str, Any]]) -> types.ModuleType:
    if alias in sys.modules:
        return sys.modules[alias]
    modules = _stand_ins(stand_ins)
    saved = {name: sys.modules.get(name) for name in modules}
    torch_before = "torch" in sys.modules
    sys.modules.update(modules)
    try:
        spec = importlib.util.spec_from_file_location(alias, _extract(member))
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[alias] = module  # pydantic resolves the module's annotations through it
        spec.loader.exec_module(module)
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    assert torch_before or "torch" not in sys.modules, "loading SGLang's module imported torch"
    return module


def protocol() -> types.ModuleType:
    """sglang/srt/entrypoints/openai/protocol.py (pydantic models of the OpenAI routes)."""
    return _load(
        PROTOCOL,
        f"{STAND_IN}.protocol",
        {"sglang": {}, "sglang.utils": {"convert_json_schema_to_str": _schema_text}},
    )


def load_snapshot() -> types.ModuleType:
    """sglang/srt/managers/load_snapshot.py (the /v1/loads document's msgspec Structs)."""
    names = ("sglang", "sglang.srt", "sglang.srt.environ", "sglang.srt.runtime_context",
             "sglang.srt.utils", "sglang.srt.utils.network")  # fmt: skip
    return _load(LOAD_SNAPSHOT, f"{STAND_IN}.load_snapshot", {name: {} for name in names})
