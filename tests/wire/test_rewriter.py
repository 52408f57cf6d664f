"""The forward-path rewriter changes the model and include_usage, and not one other byte."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmgate.proxy.wire import decode_chat_completion, rewrite_request

EXTRA_BODY = (
    b'"top_k": 20, "min_p":0.05,"regex":"[a-z]+\\\\d", '
    b'"chat_template_kwargs": {"enable_thinking": false, "note": "caf\\u00e9 \\"quoted\\""}'
)


def test_extra_body_fields_reach_the_backend_byte_for_byte() -> None:
    original = (
        b'{"model": "alias", "messages": [{"role": "user", "content": "hi \\"model\\": x"}], '
        + EXTRA_BODY
        + b', "stream": true}'
    )
    rewritten = rewrite_request(original, model="org/served-7b", include_usage=True)
    assert EXTRA_BODY in rewritten
    assert b'"content": "hi \\"model\\": x"' in rewritten
    decoded = json.loads(rewritten)
    assert decoded["model"] == "org/served-7b"
    assert decoded["stream_options"] == {"include_usage": True}
    assert decoded["top_k"] == 20
    assert decoded["chat_template_kwargs"]["note"] == 'café "quoted"'


def test_only_the_model_value_changes_when_no_usage_is_forced() -> None:
    original = b'{ "messages":[],\n  "model" :\t"alias" , "x": {"model": "inner"} }'
    assert rewrite_request(original, model="served") == (
        b'{ "messages":[],\n  "model" :\t"served" , "x": {"model": "inner"} }'
    )


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (b"null", b'{"include_usage":true}'),
        (b"{}", b'{"include_usage":true}'),
        (b'{"include_usage": false}', b'{"include_usage": true}'),
        (b'{"include_usage": true}', b'{"include_usage": true}'),
        (b'{"include_obfuscation": false}', b'{"include_usage":true,"include_obfuscation": false}'),
    ],
    ids=["null", "empty", "false", "already-true", "other-option"],
)
def test_include_usage_is_forced_whatever_the_client_sent(options: bytes, expected: bytes) -> None:
    original = b'{"model":"m","stream":true,"stream_options":' + options + b',"top_k":5}'
    assert rewrite_request(original, include_usage=True) == (
        b'{"model":"m","stream":true,"stream_options":' + expected + b',"top_k":5}'
    )


def test_stream_options_are_added_when_absent() -> None:
    rewritten = rewrite_request(b'{"model":"m","stream":true}', include_usage=True)
    assert rewritten == b'{"stream_options":{"include_usage":true},"model":"m","stream":true}'


def test_escaped_keys_are_recognised() -> None:
    original = b'{"m\\u006fdel":"alias","note":"\\"model\\":\\"no\\""}'
    assert rewrite_request(original, model="served") == (
        b'{"m\\u006fdel":"served","note":"\\"model\\":\\"no\\""}'
    )


def test_every_duplicate_model_key_is_rewritten() -> None:
    rewritten = rewrite_request(b'{"model":"a","x":1,"model":"b"}', model="served")
    assert rewritten == b'{"model":"served","x":1,"model":"served"}'


def test_a_model_name_needing_escapes_is_encoded_as_json() -> None:
    rewritten = rewrite_request(b'{"model":"a"}', model='we"ird\\name')
    assert json.loads(rewritten) == {"model": 'we"ird\\name'}


def test_the_view_leaves_the_body_alone_when_nothing_must_change() -> None:
    original = b'{"model":"demo","messages":[{"role":"user","content":"x"}]}'
    view = decode_chat_completion(original)
    assert view.upstream_body(original, "demo") is original


def test_the_view_forces_usage_on_a_stream_the_client_did_not_ask_usage_for() -> None:
    original = b'{"model":"demo","stream":true,"messages":[{"role":"user","content":"x"}]}'
    view = decode_chat_completion(original)
    assert not view.include_usage
    assert json.loads(view.upstream_body(original, "demo"))["stream_options"] == {
        "include_usage": True
    }


def test_the_view_keeps_a_stream_that_already_asks_for_usage_untouched() -> None:
    original = (
        b'{"model":"demo","stream":true,"stream_options":{"include_usage":true},'
        b'"messages":[{"role":"user","content":"x"}]}'
    )
    view = decode_chat_completion(original)
    assert view.include_usage
    assert view.upstream_body(original, "demo") is original


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    extras=st.dictionaries(
        st.text(max_size=10).filter(lambda key: key not in {"model", "stream_options"}),
        json_values,
        max_size=6,
    ),
    options=st.none()
    | st.just({})
    | st.fixed_dictionaries(
        {}, optional={"include_usage": st.booleans(), "include_obfuscation": st.booleans()}
    ),
    has_options=st.booleans(),
    indent=st.none() | st.integers(0, 2),
    model_first=st.booleans(),
    change_model=st.booleans(),
)
def test_rewriting_any_body_changes_exactly_the_two_fields(
    *,
    extras: dict[str, Any],
    options: dict[str, Any] | None,
    has_options: bool,
    indent: int | None,
    model_first: bool,
    change_model: bool,
) -> None:
    document: dict[str, Any] = {"model": "alias"} if model_first else {}
    document.update(extras)
    if has_options:
        document["stream_options"] = options
    document.setdefault("model", "alias")
    original = json.dumps(document, indent=indent).encode()
    new_model = "served" if change_model else None
    rewritten = rewrite_request(original, model=new_model, include_usage=True)
    expected = dict(document, model=new_model or "alias")
    expected["stream_options"] = {
        **(options if has_options and options else {}),
        "include_usage": True,
    }
    assert msgspec.json.decode(rewritten) == expected
    for key, value in extras.items():
        encoded = json.dumps({key: value}, indent=indent).encode()
        if indent is None:  # the member's own bytes are unchanged
            assert encoded[1:-1] in rewritten


@pytest.mark.parametrize(
    "original",
    [
        b'{"model":"m","stream":true,"messages":[{"role":"user","content":"stream_options"}]}',
        b'{"model":"m","stream":true,"stream\\u005foptions":{"include_usage":false}}',
        b'{"model":"m","note":"\\"stream_options\\": null","stream":true}',
        b" {\n }",
    ],
    ids=["word-in-content", "escaped-key", "quoted-in-content", "empty-object"],
)
def test_usage_is_forced_exactly_once_whatever_mentions_stream_options(original: bytes) -> None:
    rewritten = rewrite_request(original, include_usage=True)
    decoded = json.loads(rewritten)
    assert decoded["stream_options"]["include_usage"] is True
    assert rewritten.count(b"include_usage") == 1


def test_the_view_adds_absent_stream_options_without_touching_anything_else() -> None:
    original = b'{"model":"demo","stream":true,"messages":[{"role":"user","content":"x"}]}'
    view = decode_chat_completion(original)
    assert view.stream_options_absent
    assert view.upstream_body(original, "demo") == (
        b'{"stream_options":{"include_usage":true},' + original[1:]
    )


def test_the_view_tells_explicit_null_stream_options_from_absent_ones() -> None:
    original = (
        b'{"model":"demo","stream":true,"stream_options":null,'
        b'"messages":[{"role":"user","content":"x"}]}'
    )
    view = decode_chat_completion(original)
    assert not view.stream_options_absent
    rewritten = view.upstream_body(original, "demo")
    assert rewritten.count(b"stream_options") == 1
    assert json.loads(rewritten)["stream_options"] == {"include_usage": True}
