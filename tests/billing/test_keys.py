"""Keys: secrets, hashing, the in-memory ring, the stores and the refresher."""

from __future__ import annotations

import anyio
import pytest

from tests.support.clock import FakeClock
from warmgate.proxy.errors import InvalidApiKey
from warmgate.proxy.keys import (
    Key,
    KeyRefresher,
    KeyRing,
    KeyUpdate,
    generate_key_id,
    generate_secret,
    hash_secret,
    open_key_store,
)


def test_a_secret_is_wg_prefixed_and_random_and_only_its_hash_is_kept() -> None:
    first, second = generate_secret(), generate_secret()
    assert first.startswith("wg-")
    assert len(first) >= 40
    assert first != second
    digest = hash_secret(first)
    assert len(digest) == 64
    assert first not in digest
    assert digest == hash_secret(first)


def test_the_ring_authenticates_a_bearer_header_to_its_key() -> None:
    secret = generate_secret()
    key = Key(id="key_a", name="alice")
    ring = KeyRing({hash_secret(secret): key})
    assert ring.authenticate(f"Bearer {secret}") is key
    assert ring.authenticate(f"bearer {secret}") is key


@pytest.mark.parametrize("header", [None, "", "Bearer ", "Basic abc", "wg-nothing"])
def test_the_ring_refuses_a_missing_or_malformed_header(header: str | None) -> None:
    ring = KeyRing({hash_secret("wg-x"): Key(id="key_a", name="a")})
    with pytest.raises(InvalidApiKey) as raised:
        ring.authenticate(header)
    assert raised.value.status == 401
    assert raised.value.instance_code == "invalid_api_key"


def test_a_wrong_key_is_refused_without_echoing_it() -> None:
    ring = KeyRing({hash_secret("wg-right"): Key(id="key_a", name="a")})
    wrong = "wg-wrong-secret-value"
    with pytest.raises(InvalidApiKey) as raised:
        ring.authenticate(f"Bearer {wrong}")
    assert wrong not in raised.value.to_json().decode()
    assert "wrong-secret" not in str(raised.value)


def test_revoked_and_expired_keys_are_refused(clock: FakeClock) -> None:
    revoked, expiring = generate_secret(), generate_secret()
    ring = KeyRing(
        {
            hash_secret(revoked): Key(id="key_r", name="r", revoked=True),
            hash_secret(expiring): Key(id="key_e", name="e", expires_at=clock.now + 10),
        },
        clock=clock,
    )
    with pytest.raises(InvalidApiKey):
        ring.authenticate(f"Bearer {revoked}")
    assert ring.authenticate(f"Bearer {expiring}").id == "key_e"
    clock.advance(10)
    with pytest.raises(InvalidApiKey):
        ring.authenticate(f"Bearer {expiring}")


def test_a_key_repr_holds_no_secret_material() -> None:
    secret = generate_secret()
    ring = KeyRing({hash_secret(secret): Key(id="key_a", name="a")})
    assert secret not in repr(ring)
    assert hash_secret(secret) not in repr(ring)


@pytest.mark.anyio
async def test_the_store_round_trips_keys_and_the_refresher_brings_revocations_to_the_ring(
    store_url: str,
) -> None:
    store = open_key_store(store_url)
    await store.start()
    try:
        secret = generate_secret()
        key = Key(
            id=generate_key_id(),
            name="alice",
            allowed_models=frozenset({"demo"}),
            rpm=5,
            quota=100,
            quota_period="day",
        )
        await store.insert(key, hash_secret(secret))
        ring = KeyRing()
        refresher = KeyRefresher(store, ring, interval_s=3600)
        await refresher.start()
        try:
            loaded = ring.authenticate(f"Bearer {secret}")
            assert loaded.id == key.id
            assert loaded.allowed_models == frozenset({"demo"})
            assert (loaded.rpm, loaded.quota, loaded.quota_period) == (5, 100, "day")

            updated = await store.update(key.id, KeyUpdate(rpm=None, max_concurrency=2))
            assert updated is not None
            assert (updated.rpm, updated.max_concurrency) == (None, 2)

            await store.revoke(key.id)
            assert ring.authenticate(f"Bearer {secret}").id == key.id  # not refreshed yet
            await refresher.refresh()
            with pytest.raises(InvalidApiKey):
                ring.authenticate(f"Bearer {secret}")
        finally:
            await refresher.close()
    finally:
        await store.close()


@pytest.mark.anyio
async def test_the_store_holds_the_hash_and_never_the_secret(sqlite_url: str) -> None:
    store = open_key_store(sqlite_url)
    await store.start()
    secret = generate_secret()
    await store.insert(Key(id="key_a", name="a"), hash_secret(secret))
    await store.close()
    database = anyio.Path(sqlite_url.removeprefix("sqlite:///"))
    files = [path async for path in database.parent.iterdir()]
    assert files
    for path in files:  # the database and its WAL
        assert secret.encode() not in await path.read_bytes()


@pytest.mark.anyio
async def test_a_revocation_reaches_another_edge_through_its_background_refresh(
    store_url: str,
) -> None:
    """Two edges share a store; the second learns of a revocation made through the first by
    itself, on its next refresh round, without any request touching the database."""
    admin_store, edge_store = open_key_store(store_url), open_key_store(store_url)
    await admin_store.start()
    await edge_store.start()
    secret = generate_secret()
    await admin_store.insert(Key(id="key_r", name="r"), hash_secret(secret))
    ring = KeyRing()
    rounds: list[int] = []
    wanted = [10**9]  # the round count to wait for, set once the revocation is committed
    refreshed = anyio.Event()

    def on_refresh(count: int) -> None:
        rounds.append(count)
        if len(rounds) >= wanted[0]:
            refreshed.set()

    refresher = KeyRefresher(edge_store, ring, interval_s=0.01, on_refresh=on_refresh)
    await refresher.start()  # round 1: loads the key
    try:
        assert ring.authenticate(f"Bearer {secret}").id == "key_r"
        await admin_store.revoke("key_r")
        wanted[0] = len(rounds) + 2  # a round that surely started after the revocation
        with anyio.fail_after(10):
            await refreshed.wait()
        with pytest.raises(InvalidApiKey):
            ring.authenticate(f"Bearer {secret}")
    finally:
        await refresher.close()
        await admin_store.close()
        await edge_store.close()
