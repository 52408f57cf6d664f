"""The `[limits]` section: what it accepts, and the limiter each setting builds."""

from __future__ import annotations

import pytest

from warmgate.proxy.limits import LocalLimiter, RedisLimiter, Unlimited, build_limiter
from warmgate.proxy.settings import SettingsError, parse_settings


def test_local_share_is_a_part_of_a_limit_between_0_and_1() -> None:
    assert parse_settings({"limits": {"local_share": 0.25}}).limits.local_share == 0.25
    assert parse_settings({}).limits.local_share is None  # 1 / the live processes
    for wrong in (0, -0.5, 1.5):
        with pytest.raises(SettingsError, match="local_share"):
            parse_settings({"limits": {"local_share": wrong}})
    with pytest.raises(SettingsError, match="store_timeout_s"):
        parse_settings({"limits": {"store_timeout_s": 0}})


def test_the_settings_build_no_limiter_one_in_process_or_one_on_redis() -> None:
    assert isinstance(build_limiter(enabled=False), Unlimited)
    local = build_limiter(worker_count=3, worker_index=1)
    assert isinstance(local, LocalLimiter)
    assert local.health().processes == 3
    shared = build_limiter(redis_url="redis://:secret@127.0.0.1:6379/0", local_share=0.5)
    assert isinstance(shared, RedisLimiter)
    assert "secret" not in repr(shared)
