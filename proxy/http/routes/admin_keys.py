"""The admin API for keys: create (the secret is shown once), list, read, update, revoke.

Every change is written to the store and this edge's key ring is refreshed at once; other edges
pick it up within their refresh interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response, delete, get, patch, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from warmgate.proxy.errors import InvalidRequest, NotFound
from warmgate.proxy.keys.issue import KeySpec, KeySpecError, check_update, issue_key, key_view
from warmgate.proxy.keys.refresher import KeyRefresher
from warmgate.proxy.keys.store import KeyStore, KeyUpdate
from warmgate.proxy.media import JSON

AnyRequest = Request[Any, Any, Any]
T = TypeVar("T")
_encode = msgspec.json.Encoder().encode


def _decode(body: bytes, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(body or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        path = str(exc).rpartition(" - at `$.")[2].rstrip("`") if "`$." in str(exc) else None
        raise InvalidRequest(f"Invalid key request: {exc}", param=path) from None
    except msgspec.DecodeError:
        raise InvalidRequest("We could not parse the JSON body of your request.") from None


def _json(body: object, status: int = 200) -> Response[bytes]:
    return Response(_encode(body), media_type=JSON, status_code=status)


def admin_keys_routes(
    store: KeyStore,
    refresher: KeyRefresher,
    *,
    known_models: Callable[[], Collection[str]] | None = None,
    clock: Callable[[], float] = time.time,
) -> list[HTTPRouteHandler]:
    """Mounted behind the admin guard (`admin_access`); `known_models` are the models a new
    key may name."""

    async def existing(key_id: str) -> None:
        if await store.get(key_id) is None:
            raise NotFound(f"No API key found with id '{key_id}'.", param="id")

    @post("/admin/keys", name="admin_keys_create", status_code=201)
    async def create(request: AnyRequest) -> Response[bytes]:
        spec = _decode(await request.body(), KeySpec)
        try:
            models = known_models() if known_models is not None else None
            key, secret = await issue_key(store, spec, clock=clock, known_models=models)
        except KeySpecError as exc:
            raise InvalidRequest(str(exc), param=exc.param) from None
        await refresher.refresh()
        return _json({**key_view(key), "secret": secret}, status=201)

    @get("/admin/keys", name="admin_keys_list")
    async def list_keys() -> Response[bytes]:
        stored = await store.load()
        return _json({"object": "list", "data": [key_view(key) for _, key in stored]})

    @get("/admin/keys/{key_id:str}", name="admin_keys_get")
    async def read(key_id: FromPath[str]) -> Response[bytes]:
        key = await store.get(key_id)
        if key is None:
            raise NotFound(f"No API key found with id '{key_id}'.", param="id")
        return _json(key_view(key))

    @patch("/admin/keys/{key_id:str}", name="admin_keys_update")
    async def update(request: AnyRequest, key_id: FromPath[str]) -> Response[bytes]:
        changes = _decode(await request.body(), KeyUpdate)
        current = await store.get(key_id)
        if current is None:
            raise NotFound(f"No API key found with id '{key_id}'.", param="id")
        try:
            check_update(current, changes)
        except KeySpecError as exc:
            raise InvalidRequest(str(exc), param=exc.param) from None
        key = await store.update(key_id, changes)
        await refresher.refresh()
        assert key is not None
        return _json(key_view(key))

    async def revoke_key(key_id: str) -> Response[bytes]:
        await existing(key_id)
        key = await store.revoke(key_id)
        await refresher.refresh()
        assert key is not None
        return _json(key_view(key))

    @post("/admin/keys/{key_id:str}/revoke", name="admin_keys_revoke", status_code=200)
    async def revoke(key_id: FromPath[str]) -> Response[bytes]:
        return await revoke_key(key_id)

    @delete("/admin/keys/{key_id:str}", name="admin_keys_delete", status_code=200)
    async def remove(key_id: FromPath[str]) -> Response[bytes]:
        return await revoke_key(key_id)

    return [create, list_keys, read, update, revoke, remove]
