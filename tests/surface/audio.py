"""Audio files for the tests, built in memory (no fixtures on disk)."""

from __future__ import annotations

import struct


def wav(seconds: float, *, rate: int = 16_000, seed: int = 0) -> bytes:
    """A mono 16-bit PCM WAV of `seconds` length (a ramp seeded by `seed`)."""
    frames = int(seconds * rate)
    samples = bytes((index * 7 + seed) % 256 for index in range(frames * 2))
    header = struct.pack("<4sI4s", b"RIFF", 36 + len(samples), b"WAVE")
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16)
    return header + fmt + struct.pack("<4sI", b"data", len(samples)) + samples
