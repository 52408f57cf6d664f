"""Injected faults: what a replica does wrong on purpose, switchable at run time."""

from __future__ import annotations

import random

import msgspec

from warmgate.backends.sim.config import SimConfig

FAIL_STATUSES = frozenset({500, 502, 503, 504})


class Faults(msgspec.Struct, kw_only=True):
    """The fault switches of one replica. `POST /_sim/faults` replaces the named fields."""

    refuse_connections: bool = False  # close the listening socket: connects are refused
    fail_rate: float = 0.0  # share of generation requests answered with `fail_status`
    fail_status: int = 500
    hang_before_first_byte: bool = False  # hold requests before any byte until cleared
    cut_stream_after_tokens: int | None = None  # drop the connection after N streamed tokens
    error_stream_after_tokens: int | None = None  # in-band 500 error event after N tokens
    slow_decode_factor: float = 1.0  # multiplies every decode step
    never_ready: bool = False  # stay "Starting": /health*, /ready, /ping answer 503
    unhealthy: bool = False  # /health* and /ping answer 503 (a stuck engine)

    @classmethod
    def from_config(cls, config: SimConfig) -> Faults:
        return cls(
            refuse_connections=config.refuse_connections,
            fail_rate=config.fail_rate,
            fail_status=config.fail_status,
            hang_before_first_byte=config.hang_before_first_byte,
            cut_stream_after_tokens=config.cut_stream_after_tokens,
            error_stream_after_tokens=config.error_stream_after_tokens,
            slow_decode_factor=config.slow_decode_factor,
            never_ready=config.never_ready,
            unhealthy=config.unhealthy,
        )

    def validate(self) -> None:
        """Raise ValueError for a setting the simulator cannot honour."""
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")
        if self.fail_status not in FAIL_STATUSES:
            raise ValueError(f"fail_status must be one of {sorted(FAIL_STATUSES)}")
        if self.slow_decode_factor <= 0:
            raise ValueError("slow_decode_factor must be positive")
        for after in (self.cut_stream_after_tokens, self.error_stream_after_tokens):
            if after is not None and after < 0:
                raise ValueError("cut_stream_after_tokens and error_stream_after_tokens are >= 0")


class FaultDice:
    """Seeded draws for `fail_rate`, so a run with the same seed fails the same requests."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def fails(self, faults: Faults) -> bool:
        return faults.fail_rate > 0.0 and self._random.random() < faults.fail_rate
