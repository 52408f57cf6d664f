"""Constrained output: seeded random instances that validate, sized by max_tokens, refused as
SGLang 0.5.23 refuses what its grammar backend cannot compile."""

from __future__ import annotations

import json
import random
import re
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import pytest
from openai.types.chat import ChatCompletion

from warmgate.backends.sim.constrained.constraint import (
    EBNF,
    JSON,
    REGEX,
    Constraint,
    ConstraintError,
)
from warmgate.backends.sim.constrained.grammar import GrammarError

pytestmark = pytest.mark.anyio

ADDRESS_BOOK: dict[str, Any] = {
    "$defs": {
        "Address": {
            "type": "object",
            "properties": {
                "street": {"type": "string", "minLength": 3, "maxLength": 40},
                "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
                "kind": {"enum": ["home", "work"]},
            },
            "required": ["street", "zip", "kind"],
            "additionalProperties": False,
        },
        "Person": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 24},
                "age": {"type": "integer", "minimum": 0, "exclusiveMaximum": 130},
                "score": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "email": {"type": "string", "format": "email"},
                "born": {"type": "string", "format": "date"},
                "id": {"type": "string", "format": "uuid"},
                "addresses": {
                    "type": "array",
                    "items": {"$ref": "#/$defs/Address"},
                    "minItems": 1,
                    "maxItems": 3,
                },
                "manager": {"anyOf": [{"$ref": "#/$defs/Person"}, {"type": "null"}]},
                "nickname": {"type": ["string", "null"]},
                "active": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 0},
            },
            "required": ["name", "age", "score", "email", "born", "id", "addresses", "manager"],
        },
    },
    "type": "object",
    "properties": {
        "people": {"type": "array", "items": {"$ref": "#/$defs/Person"}, "minItems": 2},
        "version": {"const": 3},
        "mode": {"allOf": [{"type": "string"}, {"enum": ["draft", "final"]}]},
    },
    "required": ["people", "version", "mode"],
}

CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER


def validate(instance: Any, schema: Any) -> None:
    jsonschema.Draft202012Validator(schema, format_checker=CHECKER).validate(instance)


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "demo", "messages": [{"role": "user", "content": "Fill it in"}], **extra}


def json_format(schema: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}


def test_instances_of_a_schema_with_refs_validate_and_differ_by_seed() -> None:
    compiled = Constraint(JSON, ADDRESS_BOOK).compile()
    texts = {compiled.text(random.Random(seed), lambda _: True) for seed in range(40)}
    for text in texts:
        validate(json.loads(text), ADDRESS_BOOK)
    assert len(texts) == 40  # a random instance each time, not one fixed object
    again = compiled.text(random.Random(7), lambda _: True)
    assert again == compiled.text(random.Random(7), lambda _: True)


def test_a_budget_shrinks_the_instance_before_anything_is_cut() -> None:
    compiled = Constraint(JSON, ADDRESS_BOOK).compile()
    roomy = compiled.text(random.Random(3), lambda _: True)
    tight = compiled.text(random.Random(3), lambda text: len(text) < len(roomy) // 2)
    assert len(tight) < len(roomy)
    validate(json.loads(tight), ADDRESS_BOOK)


@pytest.mark.parametrize(
    "pattern",
    [
        r"(yes|no)",
        r"\d{3}-\d{4}",
        r"[A-Z][a-z]{2,8}( [A-Z][a-z]+)?",
        r"(?:[a-f0-9]{2}:){5}[a-f0-9]{2}",
        r"^\w+@\w+\.(com|org)$",
        r"[^\s,]+(, [^\s,]+)*",
        r"\(\+\d{1,3}\) \d+\.?\d*",
        r"(?P<word>[a-z]+)-x{0,2}",
    ],
)
def test_regex_samples_match_the_regex(pattern: str) -> None:
    compiled = Constraint(REGEX, pattern).compile()
    for seed in range(25):
        text = compiled.text(random.Random(seed), lambda _: True)
        assert re.fullmatch(pattern, text), (pattern, text)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(abc", "unterminated subpattern"),
        ("abc)", "unbalanced parenthesis"),
        ("*a", "nothing to repeat"),
        ("[z-a]", "bad character range"),
        ("(a)\\1", "backreferences are not supported"),
        ("a(?=b)", "lookaround assertions are not supported"),
        ("[abc", "unterminated character class"),
    ],
)
def test_a_regex_that_cannot_be_compiled_is_refused(pattern: str, reason: str) -> None:
    with pytest.raises(ConstraintError, match=re.escape(reason)) as caught:
        Constraint(REGEX, pattern).compile()
    assert str(caught.value).startswith("Failed to compile regex grammar: ")


def test_an_ebnf_grammar_yields_its_sentences() -> None:
    grammar = """
        root   ::= list | "none"
        list   ::= "[" item ("," item)* "]"   # recursive through item
        item   ::= [0-9]+ | list
    """
    compiled = Constraint(EBNF, grammar).compile()
    sentence = re.compile(r"none|\[.*\]")
    for seed in range(30):
        text = compiled.text(random.Random(seed), lambda _: True)
        assert sentence.fullmatch(text), text
        assert text.count("[") == text.count("]")


@pytest.mark.parametrize(
    ("grammar", "reason"),
    [
        ('answer ::= "yes"', 'The root rule with name "root" is not found.'),
        ("root ::= answer", 'Rule "answer" is not defined'),
        ('root ::= "open', "unterminated string literal"),
        ("root ::= [0-9]{3,1}", "max < min"),
    ],
)
def test_an_ebnf_grammar_that_cannot_be_compiled_is_refused(grammar: str, reason: str) -> None:
    with pytest.raises(ConstraintError, match=re.escape(reason)):
        Constraint(EBNF, grammar).compile()


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        # json_schema_validation.validate_xgrammar_json_schema, word for word
        (
            {"type": "array", "uniqueItems": True},
            "JSON Schema at # is not supported by xgrammar: keyword(s) uniqueItems would be "
            "ignored",
        ),
        (
            {"properties": {"a": {"type": "string", "format": "phone"}}},
            "JSON Schema at #/properties/a is not supported by xgrammar: string format 'phone' "
            "is not implemented",
        ),
        (
            {"type": "string", "pattern": "a+", "maxLength": 3},
            "JSON Schema at # is not supported by xgrammar: constraints pattern, "
            "minLength/maxLength cannot be enforced together",
        ),
        ({"type": "strnig"}, "unsupported type 'strnig'"),
        ({"properties": {"a": {"$ref": "#/$defs/Missing"}}}, "points to nothing"),
        ({"type": "array", "minItems": 4, "maxItems": 2}, "'minItems' (4) exceeds 'maxItems'"),
        ({"type": "string", "pattern": "(a"}, "invalid 'pattern'"),
    ],
)
def test_a_schema_sglang_refuses_is_refused_with_its_reason(schema: Any, reason: str) -> None:
    with pytest.raises(ConstraintError) as caught:
        Constraint(JSON, schema).compile()
    assert str(caught.value).startswith("Failed to compile json grammar: ")
    assert reason in str(caught.value)


def test_a_schema_without_a_finite_instance_is_refused() -> None:
    endless = {"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}},
               "required": ["next"]}}, "$ref": "#/$defs/N"}  # fmt: skip
    with pytest.raises(ConstraintError, match="no finite instance"):
        Constraint(JSON, endless).compile().text(random.Random(0), lambda _: True)


def test_grammar_errors_are_value_errors() -> None:
    assert issubclass(GrammarError, ValueError)


async def test_a_json_schema_answer_validates_and_streams_the_same_text(
    http: httpx.AsyncClient, sglang: Any
) -> None:
    body = chat(max_tokens=2000, seed=11, response_format=json_format(ADDRESS_BOOK))
    reply = await http.post("/v1/chat/completions", json=body)
    document = reply.json()
    parsed = sglang.ChatCompletionResponse.model_validate(document)
    assert json.loads(parsed.model_dump_json()) == document  # SGLang's exact shape
    choice = document["choices"][0]
    assert choice["finish_reason"] == "stop"
    validate(json.loads(choice["message"]["content"]), ADDRESS_BOOK)
    streamed = await http.post("/v1/chat/completions", json={**body, "stream": True})
    deltas = []
    for line in streamed.text.split("\n\n"):
        if line.startswith("data: {"):
            chunk = json.loads(line.removeprefix("data: "))
            sglang.ChatCompletionStreamResponse.model_validate(chunk)
            deltas += [c["delta"].get("content") or "" for c in chunk["choices"]]
    assert "".join(deltas) == choice["message"]["content"]  # same seed, same answer


async def test_without_a_seed_each_answer_is_a_new_instance(http: httpx.AsyncClient) -> None:
    body = chat(max_tokens=2000, response_format=json_format(ADDRESS_BOOK))
    answers = set()
    for _ in range(3):
        reply = (await http.post("/v1/chat/completions", json=body)).json()
        content = reply["choices"][0]["message"]["content"]
        validate(json.loads(content), ADDRESS_BOOK)
        answers.add(content)
    assert len(answers) == 3


async def test_a_budget_too_small_for_the_schema_ends_with_length_and_a_cut_body(
    http: httpx.AsyncClient,
) -> None:
    body = chat(max_tokens=12, response_format=json_format(ADDRESS_BOOK))
    reply = (await http.post("/v1/chat/completions", json=body)).json()
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "length"
    assert reply["usage"]["completion_tokens"] == 12
    with pytest.raises(json.JSONDecodeError):
        json.loads(choice["message"]["content"])


async def test_json_object_answers_an_object_and_the_schema_shortcut_is_honoured(
    http: httpx.AsyncClient, sglang: Any
) -> None:
    reply = (await http.post("/v1/chat/completions", json=chat(
        max_tokens=500, response_format={"type": "json_object"}))).json()  # fmt: skip
    assert isinstance(json.loads(reply["choices"][0]["message"]["content"]), dict)
    # ChatCompletionRequest.set_json_schema moves a bare "schema" under json_schema
    shortcut = {"type": "json_schema", "schema": {"type": "object", "title": "Pair",
                "properties": {"x": {"type": "integer"}}, "required": ["x"]}}  # fmt: skip
    moved = sglang.ChatCompletionRequest.model_validate(chat(response_format=shortcut))
    assert moved.response_format.json_schema.name == "Pair"
    reply = (await http.post("/v1/chat/completions", json=chat(
        max_tokens=500, response_format=shortcut))).json()  # fmt: skip
    assert set(json.loads(reply["choices"][0]["message"]["content"])) == {"x"}


async def test_regex_and_ebnf_fields_constrain_chat_and_completions(
    http: httpx.AsyncClient,
) -> None:
    pattern = r"[A-Z]{3}-\d{2}"
    reply = (await http.post("/v1/chat/completions", json=chat(regex=pattern))).json()
    assert re.fullmatch(pattern, reply["choices"][0]["message"]["content"])
    completion = {"model": "demo", "prompt": "Code:", "max_tokens": 64}
    reply = (await http.post("/v1/completions", json={**completion, "regex": pattern})).json()
    assert re.fullmatch(pattern, reply["choices"][0]["text"])
    reply = (await http.post("/v1/completions", json={**completion,
             "ebnf": 'root ::= "ok" | "fail"'})).json()  # fmt: skip
    assert reply["choices"][0]["text"] in ("ok", "fail")
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    reply = (await http.post("/v1/completions", json={**completion,
             "json_schema": json.dumps(schema)})).json()  # fmt: skip
    validate(json.loads(reply["choices"][0]["text"]), schema)


async def test_an_invalid_constraint_is_a_400_or_an_in_band_error_on_a_stream(
    http: httpx.AsyncClient, sglang: Any
) -> None:
    body = chat(response_format=json_format({"type": "object", "not": {}}))
    reply = await http.post("/v1/chat/completions", json=body)
    assert reply.status_code == 400
    error = sglang.ErrorResponse.model_validate(reply.json())
    assert error.type == "BadRequestError"
    assert error.message == (
        "Failed to compile json grammar: JSON Schema at # is not supported by xgrammar: "
        "keyword(s) not would be ignored"
    )
    streamed = await http.post("/v1/chat/completions", json={**chat(regex="(a"), "stream": True})
    assert streamed.status_code == 200
    events = streamed.text.split("\n\n")
    in_band = json.loads(events[0].removeprefix("data: "))["error"]
    assert (in_band["code"], in_band["type"]) == (400, "BAD_REQUEST")
    assert in_band["message"].startswith("Failed to compile regex grammar: ")
    assert events[1] == "data: [DONE]"
    bad_json = {"model": "demo", "prompt": "x", "json_schema": "{not json"}
    reply = await http.post("/v1/completions", json=bad_json)
    assert reply.status_code == 400
    assert reply.json()["message"] == (
        "Failed to compile json grammar: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)"
    )


async def test_tool_calls_follow_the_parameters_schema_when_forced(
    http: httpx.AsyncClient, sglang: Any
) -> None:
    parameters = ADDRESS_BOOK["$defs"]["Address"] | {"$defs": ADDRESS_BOOK["$defs"]}
    schemas: dict[str, Any] = {"noop": {"type": "object"}, "file_address": parameters}
    tools = [
        {"type": "function", "function": {"name": name, "parameters": schema}}
        for name, schema in schemas.items()
    ]
    for choice in ("required", {"type": "function", "function": {"name": "file_address"}}):
        body = chat(max_tokens=800, tools=tools, tool_choice=choice)
        reply = (await http.post("/v1/chat/completions", json=body)).json()
        sglang.ChatCompletionResponse.model_validate(reply)
        calls = reply["choices"][0]["message"]["tool_calls"]
        assert reply["choices"][0]["finish_reason"] == "tool_calls"
        if choice != "required":
            assert calls[0]["function"]["name"] == "file_address"
        function = calls[0]["function"]
        validate(json.loads(function["arguments"]), schemas[function["name"]])
        ChatCompletion.model_validate(reply)


async def test_a_forced_tool_with_an_output_constraint_is_refused(http: httpx.AsyncClient) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    body = chat(tools=tools, tool_choice="required", regex="a+")
    reply = await http.post("/v1/chat/completions", json=body)
    assert reply.status_code == 400
    assert reply.json()["type"] == "BadRequest"
    assert "cannot both be honored" in reply.json()["message"]


async def test_invalid_tool_parameters_are_refused_naming_the_tool(
    http: httpx.AsyncClient,
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "thing"}}}]
    reply = await http.post("/v1/chat/completions", json=chat(tools=tools))
    assert reply.status_code == 400
    assert reply.json()["message"].startswith("Tool 0 function has invalid 'parameters' schema: ")
