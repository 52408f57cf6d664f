"""docs/configuration.md lists every setting with its default, exactly as the Structs say."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from warmgate.proxy import settings

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"
# The heading of each table in the page, and the Struct it documents.
SECTIONS: dict[str, type[msgspec.Struct]] = {
    "Top level": settings.Settings,
    "`[[models]]`": settings.ModelSettings,
    "`[[models.backends]]`": settings.BackendSettings,
    "`[server]`": settings.ServerSettings,
    "`[upstream]`": settings.UpstreamSettings,
    "`[routing]`": settings.RoutingSettings,
    "`[health]`": settings.HealthSettings,
    "`[auth]`": settings.AuthSettings,
    "`[[keys]]`": settings.StaticKeySettings,
    "`[limits]`": settings.LimitsSettings,
    "`[ledger]`": settings.LedgerSettings,
    "`[bindings]`": settings.BindingsSettings,
    "`[metrics]`": settings.MetricsSettings,
    "`[tracing]`": settings.TracingSettings,
}
ROW = re.compile(r"^\| `(?P<key>[a-z_0-9]+)` \| (?P<default>[^|]+?) \|")


def documented() -> dict[str, dict[str, str]]:
    """Heading -> {key: default as written} for every table of the page."""
    tables: dict[str, dict[str, str]] = {}
    heading = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
            continue
        match = ROW.match(line)
        if match and heading is not None:
            tables.setdefault(heading, {})[match["key"]] = match["default"].strip()
    return tables


def rendered(field: msgspec.structs.FieldInfo) -> str:
    """A default as the page writes it: TOML literals in backquotes, or a word."""
    if field.default is not msgspec.NODEFAULT:
        value = field.default
    elif field.default_factory is not msgspec.NODEFAULT:
        value = field.default_factory()
    else:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Decimal):
        return f"`{value}`"
    if isinstance(value, str | list):
        return f"`{json.dumps(value)}`"
    return f"`{value!r}`"


def fields_of(struct: type[msgspec.Struct]) -> dict[str, str]:
    nested = {
        field.name
        for field in msgspec.structs.fields(struct)
        if isinstance(field.type, type) and issubclass(field.type, msgspec.Struct)
    }
    return {
        field.name: rendered(field)
        for field in msgspec.structs.fields(struct)
        if field.name not in nested  # documented in their own sections
    }


@pytest.mark.parametrize("heading", list(SECTIONS))
def test_each_section_documents_every_setting_with_its_default(heading: str) -> None:
    tables = documented()
    assert heading in tables, f"docs/configuration.md has no table under {heading}"
    assert tables[heading] == fields_of(SECTIONS[heading])


def test_every_settings_struct_has_a_section() -> None:
    structs = {
        obj
        for obj in vars(settings).values()
        if isinstance(obj, type)
        and issubclass(obj, msgspec.Struct)
        and obj.__module__ == settings.__name__
    }
    assert structs == set(SECTIONS.values())
