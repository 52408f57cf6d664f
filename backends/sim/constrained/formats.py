"""Random strings for the JSON Schema string formats SGLang's grammar backend (XGrammar)
implements; any other format is refused by the schema check (schema.py)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable

_NAMES = ("alex", "sam", "kim", "lee", "noor", "ira", "max", "eva", "jon", "ada")
_DOMAINS = ("example.com", "mail.example.org", "corp.example.net")
_WORDS = ("docs", "api", "items", "users", "v1", "search", "files", "report")


def _date(rng: random.Random) -> str:
    return f"{rng.randint(1990, 2030):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _time(rng: random.Random) -> str:
    clock = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    return clock + rng.choice(("Z", "+00:00", "+02:00", "-05:00"))


def _date_time(rng: random.Random) -> str:
    return f"{_date(rng)}T{_time(rng)}"


def _duration(rng: random.Random) -> str:
    return f"P{rng.randint(0, 9)}DT{rng.randint(0, 23)}H{rng.randint(0, 59)}M"


def _email(rng: random.Random) -> str:
    return f"{rng.choice(_NAMES)}.{rng.choice(_NAMES)}{rng.randint(1, 99)}@{rng.choice(_DOMAINS)}"


def _hostname(rng: random.Random) -> str:
    return f"{rng.choice(_WORDS)}{rng.randint(1, 9)}.{rng.choice(_DOMAINS)}"


def _ipv4(rng: random.Random) -> str:
    return ".".join(str(rng.randint(1, 254)) for _ in range(4))


def _ipv6(rng: random.Random) -> str:
    return ":".join(f"{rng.randint(0, 0xFFFF):x}" for _ in range(8))


def _path(rng: random.Random) -> str:
    return "/".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3)))


def _uri(rng: random.Random) -> str:
    return f"https://{rng.choice(_DOMAINS)}/{_path(rng)}"


def _uri_template(rng: random.Random) -> str:
    return f"https://{rng.choice(_DOMAINS)}/{rng.choice(_WORDS)}/{{id}}"


def _json_pointer(rng: random.Random) -> str:
    return "/" + _path(rng)


def _relative_json_pointer(rng: random.Random) -> str:
    return f"{rng.randint(0, 3)}/{_path(rng)}"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


FORMATS: dict[str, Callable[[random.Random], str]] = {
    "date": _date,
    "date-time": _date_time,
    "duration": _duration,
    "email": _email,
    "hostname": _hostname,
    "ipv4": _ipv4,
    "ipv6": _ipv6,
    "json-pointer": _json_pointer,
    "relative-json-pointer": _relative_json_pointer,
    "time": _time,
    "uri": _uri,
    "uri-reference": _uri,
    "uri-template": _uri_template,
    "uuid": _uuid,
}
