"""Validate response bodies and stream chunks against the official OpenAI OpenAPI spec.

`openai-openapi.json.gz` is `openai/openai-openapi` at commit
f85dbe223d40e1a31cba812ab2d755c7e98a92a3 (spec 2.3.0; sha256 of the JSON
bbfd19abcde0e7412da99378deb2a959ccdd3a812f97c9e35901921e8e973f9a), gzipped.

Usage in any test:

    from tests.conformance.validator import assert_valid, assert_stream_valid
    assert_valid("CreateChatCompletionResponse", response.json())
    chunks = assert_stream_valid("CreateChatCompletionStreamResponse", response.text)

The spec is loaded once per test process (about 0.1 s) and validated with jsonschema Draft
2020-12 over a `referencing` registry of the whole document. Known gaps of the spec are
allowlisted here, each with its reason (`ALLOWLIST`).
"""

from __future__ import annotations

import copy
import functools
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no stubs installed
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).with_name("openai-openapi.json.gz")
SPEC_URI = "urn:openai"

# Gaps between the spec and what OpenAI itself sends, and what the spec leaves undeclared.
ALLOWLIST = {
    "nullable": "the spec marks 111 nullable fields with OpenAPI 3.0 `nullable: true`, which "
    "JSON Schema 2020-12 ignores: rewritten to anyOf [schema, null]",
    "system_fingerprint": "typed string, but OpenAI sends null: null accepted",
    "Embedding.embedding": "with encoding_format base64 it is a string, which the spec omits",
    "CreateCompletionStreamResponse": "legacy completion streams are undeclared: a chunk is a "
    "CreateCompletionResponse whose finish_reason may be null (usage chunks have no choices)",
}

Json = Any


def rewrite_nullable(node: Json) -> Json:
    """`{..., nullable: true}` → `{anyOf: [{...}, {type: null}]}`, recursively."""
    if isinstance(node, list):
        return [rewrite_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: rewrite_nullable(value) for key, value in node.items()}
    if out.pop("nullable", False) is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _or_null(schema: Json) -> Json:
    return {"anyOf": [schema, {"type": "null"}]}


def _apply_allowlist(schemas: dict[str, Json]) -> None:
    for name in (
        "CreateChatCompletionResponse",
        "CreateChatCompletionStreamResponse",
        "CreateCompletionResponse",
    ):
        props = schemas[name]["properties"]
        props["system_fingerprint"] = _or_null(props["system_fingerprint"])
    embedding = schemas["Embedding"]["properties"]
    embedding["embedding"] = {"anyOf": [embedding["embedding"], {"type": "string"}]}
    stream = copy.deepcopy(schemas["CreateCompletionResponse"])
    choice = stream["properties"]["choices"]["items"]
    choice["properties"]["finish_reason"] = _or_null(choice["properties"]["finish_reason"])
    schemas["CreateCompletionStreamResponse"] = stream


class Conformance:
    """Validators for the spec's component schemas, built lazily and kept."""

    def __init__(self, spec: Json) -> None:
        spec = rewrite_nullable(spec)
        _apply_allowlist(spec["components"]["schemas"])
        self.schema_names = frozenset(spec["components"]["schemas"])
        resource = Resource.from_contents(spec, default_specification=DRAFT202012)
        self._registry: Registry[Json] = Registry().with_resource(SPEC_URI, resource)
        self._validators: dict[str, Draft202012Validator] = {}

    def validator(self, schema_name: str) -> Draft202012Validator:
        if schema_name not in self.schema_names:
            raise KeyError(f"no schema {schema_name!r} in the OpenAI spec")
        if schema_name not in self._validators:
            ref = {"$ref": f"{SPEC_URI}#/components/schemas/{schema_name}"}
            self._validators[schema_name] = Draft202012Validator(ref, registry=self._registry)
        return self._validators[schema_name]

    def errors(self, schema_name: str, instance: Json) -> list[str]:
        """Each violation as `path: message` (empty when the instance is valid)."""
        found = self.validator(schema_name).iter_errors(instance)
        return [f"{error.json_path}: {error.message}" for error in found]

    def assert_valid(self, schema_name: str, instance: Json) -> None:
        problems = self.errors(schema_name, instance)
        assert not problems, f"not a valid {schema_name}:\n" + "\n".join(problems[:20])


def sse_data(stream: str | bytes) -> Iterator[str]:
    """The `data:` payloads of an SSE stream, multi-line data joined by newlines."""
    text = stream.decode() if isinstance(stream, bytes) else stream
    for event in text.replace("\r\n", "\n").replace("\r", "\n").split("\n\n"):
        lines = [line for line in event.split("\n") if line.startswith("data:")]
        if lines:
            yield "\n".join(line[5:].removeprefix(" ") for line in lines)


@functools.cache
def conformance() -> Conformance:
    """The validator for this test process, loaded once."""
    with gzip.open(SPEC_PATH, "rt", encoding="utf-8") as file:
        return Conformance(json.load(file))


def assert_valid(schema_name: str, instance: Json) -> None:
    """Fail with every violation listed unless `instance` is a valid `schema_name`."""
    conformance().assert_valid(schema_name, instance)


def assert_stream_valid(schema_name: str, stream: str | bytes) -> list[Json]:
    """Validate every `data:` payload of an SSE stream but `[DONE]`; return them decoded."""
    chunks = []
    for payload in sse_data(stream):
        if payload == "[DONE]":
            continue
        chunk = json.loads(payload)
        conformance().assert_valid(schema_name, chunk)
        chunks.append(chunk)
    return chunks
