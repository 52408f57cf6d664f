"""What the fuzzing sends and how an answer is judged, shared by the bounded sample in the test
suite (tests/fuzz) and the large run (benchmarks/fuzz.py).

Bodies come from Hypothesis strategies, one per endpoint of the gateway's endpoint table: a
valid request with members replaced by arbitrary JSON, added or removed; arbitrary JSON of
any shape; bytes that are not JSON at all (truncated, deeply nested, NUL-laden, not UTF-8).
The transcription form gets multipart junk: real and broken boundaries, parts with odd names,
headers and values, files of random bytes. Stored-response routes get arbitrary ids in the path.

The judge: an answer is a problem when its status is 5xx, or when a 4xx body is not OpenAI's
error shape (`{"error": {"message": str, "type": str, "param": str | null, "code": str |
null}}`, those four keys exactly). A request that gets no answer in time is a hang.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

MODEL = "demo"
JSON = "application/json"
# Free text that stays small: the fuzz is about shapes and values, not about long prompts.
_TEXT = st.text(max_size=24)
_NUMBERS = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0, -1, 1, 2**31, 2**63, 2**64, 1e308, -1e-308, 0.5])
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | _NUMBERS | _TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=12,
)


@dataclass(frozen=True)
class Target:
    """One endpoint as the fuzz reaches it."""

    name: str
    method: str
    path: str
    valid: dict[str, Any]  # a body the endpoint serves; empty for form and path-only routes
    fields: tuple[str, ...]  # members worth replacing


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes
    content_type: str | None
    # Statuses the route documents as an HTML page (a browser form's own answers), which are
    # not OpenAI's error shape and need not be.
    html_statuses: frozenset[int] = frozenset()


def html_statuses(responses: dict[str, Any]) -> frozenset[int]:
    """The statuses an OpenAPI operation's `responses` document as `text/html`."""
    return frozenset(
        int(status)
        for status, response in responses.items()
        if status.isdigit() and "text/html" in (response.get("content") or {})
    )


TARGETS: tuple[Target, ...] = (
    Target(
        "chat.completions",
        "POST",
        "/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        (
            "model",
            "messages",
            "max_tokens",
            "max_completion_tokens",
            "n",
            "stream",
            "stream_options",
            "temperature",
            "tools",
            "tool_choice",
            "response_format",
            "logprobs",
            "top_logprobs",
            "stop",
            "seed",
            "logit_bias",
        ),
    ),
    Target(
        "completions",
        "POST",
        "/v1/completions",
        {"model": MODEL, "prompt": "hi", "max_tokens": 4},
        ("model", "prompt", "max_tokens", "n", "stream", "echo", "best_of", "logprobs", "stop"),
    ),
    Target(
        "embeddings",
        "POST",
        "/v1/embeddings",
        {"model": MODEL, "input": "hi"},
        ("model", "input", "dimensions", "encoding_format", "user"),
    ),
    Target(
        "responses",
        "POST",
        "/v1/responses",
        {"model": MODEL, "input": "hi", "max_output_tokens": 16},
        (
            "model",
            "input",
            "instructions",
            "max_output_tokens",
            "stream",
            "previous_response_id",
            "tools",
            "text",
            "reasoning",
            "store",
        ),
    ),
    Target(
        "images.generations",
        "POST",
        "/v1/images/generations",
        {"model": MODEL, "prompt": "a lighthouse"},
        ("model", "prompt", "n", "size", "response_format", "quality", "stream"),
    ),
    Target("audio.transcriptions", "POST", "/v1/audio/transcriptions", {}, ()),
    Target("responses.retrieve", "GET", "/v1/responses/{id}", {}, ()),
    Target("responses.cancel", "POST", "/v1/responses/{id}/cancel", {}, ()),
)
BY_NAME = {target.name: target for target in TARGETS}


def _mutated(target: Target) -> st.SearchStrategy[bytes]:
    """The valid body with some members replaced by arbitrary JSON, some added, some removed."""

    def build(replaced: dict[str, Any], added: dict[str, Any], removed: set[str]) -> bytes:
        body = {**target.valid, **replaced, **added}
        for name in removed:
            body.pop(name, None)
        return json.dumps(body).encode()

    return st.builds(
        build,
        st.dictionaries(st.sampled_from(target.fields), JSON_VALUES, max_size=3),
        st.dictionaries(_TEXT, JSON_VALUES, max_size=2),
        st.sets(st.sampled_from(tuple(target.valid)), max_size=1),
    )


def _nested(depth: int) -> bytes:
    return b'{"model":"demo","x":' + b"[" * depth + b"]" * depth + b"}"


NOT_JSON = st.one_of(
    st.binary(max_size=256),
    st.text(max_size=64).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.integers(min_value=900, max_value=50_000).map(_nested),
    st.sampled_from(
        [
            b"",
            b"{",
            b'{"model":"demo"',
            b'{"model":"de\x00mo","messages":[]}',
            b'{"model":"\\u0000"}',
            b'{"model":"demo","model":"demo"}',
            b"\xff\xfe{}",
            b"null",
            b"[]",
        ]
    ),
)


def json_bodies(target: Target) -> st.SearchStrategy[Request]:
    """Bodies for a JSON endpoint: mostly a valid request mutated, then any JSON, then junk."""
    bodies = st.one_of(
        _mutated(target),
        _mutated(target),
        _mutated(target),
        JSON_VALUES.map(lambda value: json.dumps(value).encode()),
        NOT_JSON,
    )
    content_types = st.sampled_from(
        [JSON, JSON, JSON, JSON, "application/json; charset=utf-8", "text/plain", None]
    )
    return st.builds(
        lambda body, content_type: Request(target.method, target.path, body, content_type),
        bodies,
        content_types,
    )


def wav_bytes(frames: int) -> bytes:
    samples = bytes(index % 256 for index in range(frames * 2))
    header = struct.pack("<4sI4s", b"RIFF", 36 + len(samples), b"WAVE")
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 16_000, 32_000, 2, 16)
    return header + fmt + struct.pack("<4sI", b"data", len(samples)) + samples


_BOUNDARY = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='";'),
    min_size=1,
    max_size=40,
)
_FORM_NAMES = st.sampled_from(
    ["file", "model", "language", "prompt", "response_format", "temperature", "stream"]
) | st.text(max_size=12)
_PART_VALUES = (
    st.sampled_from([MODEL.encode(), b"json", b"text", b"srt", b"0.5", b"true", b""])
    | st.binary(max_size=64)
    | st.integers(min_value=0, max_value=4000).map(wav_bytes)
)


def _part(boundary: str, name: str, filename: str | None, value: bytes, extra: bytes) -> bytes:
    disposition = f'Content-Disposition: form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    return (
        f"--{boundary}\r\n{disposition}\r\n".encode("utf-8", "surrogatepass")
        + extra
        + b"\r\n"
        + value
        + b"\r\n"
    )


def _form(
    boundary: str,
    parts: list[tuple[str, str | None, bytes, bytes]],
    closed: bool,
    declared: str | None,
) -> Request:
    body = b"".join(_part(boundary, *part) for part in parts)
    if closed:
        body += f"--{boundary}--\r\n".encode()
    content_type = f"multipart/form-data; boundary={declared if declared is not None else boundary}"
    return Request("POST", "/v1/audio/transcriptions", body, content_type)


_PARTS = st.lists(
    st.tuples(
        _FORM_NAMES,
        st.none() | st.sampled_from(["a.wav", "a.mp3", "x", ""]) | st.text(max_size=8),
        _PART_VALUES,
        st.sampled_from([b"", b"Content-Type: audio/wav\r\n", b"X-Odd: \x00\r\n"]),
    ),
    max_size=5,
)
# A form the endpoint serves: a short WAV file and the model.
_VALID_PARTS = [
    ("file", "a.wav", wav_bytes(1600), b"Content-Type: audio/wav\r\n"),
    ("model", None, MODEL.encode(), b""),
]

MULTIPART = st.one_of(
    st.builds(
        lambda extra: _form("wg-fuzz-boundary", [*_VALID_PARTS, *extra], True, None),
        _PARTS.map(lambda parts: parts[:2]),
    ),
    st.builds(_form, _BOUNDARY, _PARTS, st.booleans(), st.none() | _BOUNDARY),
    st.builds(
        lambda body, content_type: Request("POST", "/v1/audio/transcriptions", body, content_type),
        st.binary(max_size=256),
        st.sampled_from(["multipart/form-data", "multipart/form-data; boundary=", JSON, None]),
    ),
)

PATH_IDS = st.one_of(
    st.text(max_size=40),
    st.text(max_size=40).map(lambda text: "resp_" + text),
    st.sampled_from(["resp_", "resp_0", "..", "%00", "resp_" + "a" * 300]),
)


def path_requests(target: Target) -> st.SearchStrategy[Request]:
    return PATH_IDS.map(
        lambda response_id: Request(
            target.method,
            target.path.format(id=quote(response_id.encode("utf-8", "surrogatepass"), safe="")),
            b"",
            None,
        )
    )


def requests_for(target: Target) -> st.SearchStrategy[Request]:
    """The fuzz's requests for one endpoint of the table."""
    if target.name == "audio.transcriptions":
        return MULTIPART
    if "{id}" in target.path:
        return path_requests(target)
    return json_bodies(target)


ERROR_KEYS = {"message", "type", "param", "code"}


def _shape_problem(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return "body is not JSON"
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict) or set(error) != ERROR_KEYS or len(document) != 1:
        return "not OpenAI's error shape"
    if not isinstance(error["message"], str) or not isinstance(error["type"], str):
        return "message or type is not a string"
    if any(error[key] is not None and not isinstance(error[key], str) for key in ("param", "code")):
        return "param or code is neither a string nor null"
    return None


def problem(status: int, body: bytes, html_ok: frozenset[int] = frozenset()) -> str | None:
    """What is wrong with an answer, or None: a 5xx, or a 4xx not in OpenAI's error shape
    (unless the route documents that status as an HTML page, in `html_ok`)."""
    if status >= 500:
        return f"status {status}"
    if status < 400 or status in html_ok:
        return None
    shape = _shape_problem(body)
    return None if shape is None else f"status {status}: {shape}"
