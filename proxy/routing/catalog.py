"""The model catalog: names, aliases, served names, prices and context lengths.

It is built from the settings' `[[models]]` tables (any objects with the attributes of
`ModelDeclaration`, so `proxy.settings` owns their exact Structs) and answers one question on
the request path: which model does this name or alias mean?
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Protocol, cast

import msgspec

from warmgate.proxy.errors import ModelNotFound
from warmgate.proxy.routing.backend import Backend, backend_id, normalize_url
from warmgate.proxy.settings import Policy

POLICIES: frozenset[str] = frozenset(
    {"cache_aware", "consistent_hash", "least_outstanding", "round_robin"}
)


class BackendDeclaration(Protocol):
    @property
    def url(self) -> str: ...
    @property
    def api_key_env(self) -> str | None: ...
    @property
    def region(self) -> str | None: ...


class ModelDeclaration(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def served_name(self) -> str | None: ...
    @property
    def aliases(self) -> Sequence[str]: ...
    @property
    def price_per_request(self) -> Decimal | float | int | str: ...
    @property
    def context_length(self) -> int | None: ...
    @property
    def embedding_dimensions(self) -> int | None: ...
    @property
    def policy(self) -> str | None: ...
    @property
    def backends(self) -> Sequence[BackendDeclaration]: ...


class ModelEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One model as clients see it."""

    name: str
    served_name: str
    aliases: tuple[str, ...] = ()
    price_per_request: Decimal = Decimal(0)
    context_length: int | None = None
    # An embedding model's vector width (`dimensions` may not exceed it).
    embedding_dimensions: int | None = None
    policy: Policy = "cache_aware"


class BackendSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A backend as declared (config or backends document): the key by variable name only."""

    model: str
    url: str
    api_key_env: str | None = None
    cloud: str | None = None
    region: str | None = None
    accelerators: str | None = None
    source: str = "config"
    service: str | None = None


class CatalogError(ValueError):
    """The declared models contradict each other (a duplicate name or alias, a bad price)."""


class Catalog:
    """Models by name and alias; immutable after construction."""

    def __init__(self, entries: Iterable[ModelEntry]) -> None:
        self._entries: tuple[ModelEntry, ...] = tuple(entries)
        names: dict[str, ModelEntry] = {}
        for entry in self._entries:
            for name in (entry.name, *entry.aliases):
                other = names.get(name)
                if other is not None and other is not entry:
                    raise CatalogError(f"model name {name!r} is declared twice")
                names[name] = entry
        self._by_name = names

    @property
    def entries(self) -> tuple[ModelEntry, ...]:
        return self._entries

    def resolve(self, name: str) -> ModelEntry:
        """The model a request names, by name or alias; ModelNotFound otherwise."""
        entry = self._by_name.get(name)
        if entry is None:
            raise ModelNotFound.named(name)
        return entry

    def find(self, name: str) -> ModelEntry | None:
        """Like `resolve` without raising: for backends documents naming a model loosely."""
        entry = self._by_name.get(name)
        if entry is not None:
            return entry
        for candidate in self._entries:
            if candidate.served_name == name:
                return candidate
        return None


def parse_price(value: Decimal | float | int | str, *, model: str) -> Decimal:
    try:
        price = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise CatalogError(f"models[{model}].price_per_request is not a number") from None
    if not price.is_finite() or price < 0:
        raise CatalogError(f"models[{model}].price_per_request must be a number >= 0")
    return price


def declare(
    models: Sequence[ModelDeclaration], *, default_policy: Policy = "cache_aware"
) -> tuple[Catalog, list[BackendSpec]]:
    """The catalog and the statically configured backends of the settings' models."""
    entries: list[ModelEntry] = []
    specs: list[BackendSpec] = []
    for model in models:
        policy = model.policy or default_policy
        if policy not in POLICIES:
            raise CatalogError(f"models[{model.name}].policy {policy!r} is not one of {POLICIES}")
        entries.append(
            ModelEntry(
                name=model.name,
                served_name=model.served_name or model.name,
                aliases=tuple(model.aliases),
                price_per_request=parse_price(model.price_per_request, model=model.name),
                context_length=model.context_length,
                embedding_dimensions=model.embedding_dimensions,
                policy=cast(Policy, policy),  # checked against POLICIES above
            )
        )
        specs.extend(
            BackendSpec(model=model.name, url=b.url, api_key_env=b.api_key_env, region=b.region)
            for b in model.backends
        )
    return Catalog(entries), specs


class MissingBackendKeyError(ValueError):
    """A backend names an API key variable that the environment does not set."""


class BackendUrlError(ValueError):
    """A backend's URL is not an absolute http(s) URL."""


def materialize(spec: BackendSpec, entry: ModelEntry, environ: Mapping[str, str]) -> Backend:
    """A Backend for a declared spec, its key read from the environment variable it names."""
    url = normalize_url(spec.url)
    if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
        raise BackendUrlError(f"backend URL {url!r} of model {entry.name} is not http(s)://host")
    api_key: str | None = None
    if spec.api_key_env:
        api_key = environ.get(spec.api_key_env)
        if api_key is None:
            raise MissingBackendKeyError(
                f"environment variable {spec.api_key_env} (API key of backend {spec.url} "
                f"of model {entry.name}) is not set"
            )
    return Backend(
        id=backend_id(entry.name, url),
        model=entry.name,
        url=url,
        served_name=entry.served_name,
        api_key=api_key,
        cloud=spec.cloud,
        region=spec.region,
        accelerators=spec.accelerators,
        source=spec.source,
        service=spec.service,
    )
