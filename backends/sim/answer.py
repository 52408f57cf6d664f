"""What a request will answer, decided before it runs: one piece per sampled token.

A piece is (kind, text, call): kind REASONING or CONTENT carries text; TOOL_NAME opens tool call
`call` (its text is the function name); TOOL_ARGS carries a fragment of that call's arguments.
A natural stop samples one more token, the end-of-turn token, which is never shown.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from warmgate.backends.sim.constrained.constraint import (
    ANY_OBJECT,
    Constraint,
    ConstraintError,
    json_text,
)
from warmgate.backends.sim.instructions import fenced, prompt_schema, wants_fence
from warmgate.backends.sim.logprobs import EOS_TEXT
from warmgate.backends.sim.tokenizer import Tokenizer
from warmgate.backends.sim.wire import ChatCompletionRequest
from warmgate.backends.sim.writer import EOS_TOKEN_ID, Writer

REASONING, CONTENT, TOOL_NAME, TOOL_ARGS = 0, 1, 2, 3
Piece = tuple[int, str, int]
INSTRUCTING_ROLES = ("system", "developer", "user")
FOLLOWED_OPTIONAL = 1.0  # a model shown a schema (a prompt's, a tool's) writes all it lists


class Draws:
    """One choice's random source for structured output and logprobs, made on first use (plain
    text never needs one): from the request's seed when it gives one (same seed, same answer),
    else from the replica's own random source."""

    __slots__ = ("_made", "_seed", "_source")

    def __init__(self, seed: int | None, source: random.Random) -> None:
        self._seed = seed
        self._source = source
        self._made: random.Random | None = None

    def __call__(self) -> random.Random:
        if self._made is None:
            seed = self._source.getrandbits(64) if self._seed is None else self._seed
            self._made = random.Random(seed)
        return self._made


class ToolCallPlan:
    __slots__ = ("arguments", "id", "name")

    def __init__(self, name: str, arguments: str) -> None:
        self.id = f"call_{uuid.uuid4().hex[:24]}"
        self.name = name
        self.arguments = arguments


class Answer:
    """The pieces a request will stream, how many tokens it samples and why it stops."""

    __slots__ = ("calls", "matched", "output_tokens", "pieces", "sampled", "stop_reason")

    def __init__(
        self,
        pieces: list[Piece],
        calls: list[ToolCallPlan],
        max_new_tokens: int,
        ignore_eos: bool,
        writer: Writer,
    ) -> None:
        if ignore_eos and len(pieces) < max_new_tokens:
            pieces = pieces + [(CONTENT, w, 0) for w in writer.words(max_new_tokens - len(pieces))]
        if ignore_eos or len(pieces) + 1 > max_new_tokens:
            self.pieces = pieces[:max_new_tokens]
            self.output_tokens = max_new_tokens
            self.stop_reason = "length"
        else:
            self.pieces = pieces
            self.output_tokens = len(pieces) + 1
            self.stop_reason = "stop"
        self.sampled = self.pieces  # what was sampled, before a stop string trims the text
        self.calls = calls
        self.matched: int | str | None = EOS_TOKEN_ID if self.stop_reason == "stop" else None

    def stop_at(self, stops: Sequence[str]) -> None:
        """End where a stop string first appears in the content, as SGLang does: the string is
        trimmed from the text, `matched_stop` names it, the finish reason is "stop"."""
        longest = max((len(stop) for stop in stops), default=0)
        if not longest:
            return
        text = ""
        for index, (kind, piece, _) in enumerate(self.pieces):
            if kind != CONTENT:
                continue
            start = max(0, len(text) - longest + 1)
            text += piece
            hits = [(text.find(stop, start), stop) for stop in stops if stop]
            found = [(position, stop) for position, stop in hits if position >= 0]
            if not found:
                continue
            position, stop = min(found)
            kept: list[Piece] = []
            consumed = 0
            for piece_kind, piece_text, piece_call in self.pieces[: index + 1]:
                if piece_kind != CONTENT:
                    kept.append((piece_kind, piece_text, piece_call))
                    continue
                shown = piece_text[: max(0, position - consumed)]
                consumed += len(piece_text)
                if shown:
                    kept.append((CONTENT, shown, piece_call))
            self.pieces = kept
            self.output_tokens = index + 1  # the token that completed the stop string
            self.stop_reason, self.matched = "stop", stop
            return

    def token_texts(self) -> list[str]:
        """The text of every sampled token, the end-of-turn token of a natural stop included
        (what logprobs report)."""
        texts = [piece[1] for piece in self.sampled[: self.output_tokens]]
        texts += [EOS_TEXT] * (self.output_tokens - len(texts))
        return texts

    def text(self, kind: int, upto: int) -> str:
        """The text of one kind among the first `upto` pieces."""
        return "".join(text for k, text, _ in self.pieces[:upto] if k == kind)

    def arguments(self, call: int, upto: int) -> str:
        pieces = self.pieces[:upto]
        return "".join(text for k, text, c in pieces if k == TOOL_ARGS and c == call)

    def reasoning_tokens(self, upto: int) -> int:
        return sum(1 for kind, _, _ in self.pieces[:upto] if kind == REASONING)


def plan_text(
    writer: Writer,
    mean: int,
    max_new_tokens: int,
    ignore_eos: bool,
    stops: Sequence[str] = (),
    *,
    constraint: Constraint | None = None,
    draws: Draws | None = None,
    tokenizer: Tokenizer | None = None,
) -> Answer:
    """Free text for /v1/completions and /generate: a seeded length, then words; or, under a
    constraint, a random text it accepts that fits the budget."""
    if constraint is not None and draws is not None and tokenizer is not None:
        tokenize = tokenizer.tokenize
        text = constraint.text(draws(), lambda t: len(tokenize(t)) < max_new_tokens)
        pieces = [(CONTENT, token, 0) for token in tokenize(text)]
    else:
        visible = min(writer.natural_length(mean) - 1, max_new_tokens)  # the rest would be cut
        pieces = [(CONTENT, word, 0) for word in writer.words(visible)]
    answer = Answer(pieces, [], max_new_tokens, ignore_eos, writer)
    answer.stop_at(stops)
    return answer


def plan_chat(
    request: ChatCompletionRequest,
    writer: Writer,
    tokenizer: Tokenizer,
    mean: int,
    max_new_tokens: int,
    *,
    reasoning: bool,
    tool_parser: bool,
    draws: Draws,
    constraint: Constraint | None = None,
) -> Answer:
    """Text, JSON or tool calls, as the request's tools, tool_choice, response_format and
    constraint ask; structured text is a random instance from `draws`, sized to the budget."""
    pieces: list[Piece] = []
    calls: list[ToolCallPlan] = []
    natural = writer.natural_length(mean)
    thinking = (request.chat_template_kwargs or {}).get("enable_thinking", True) is not False
    if reasoning and thinking and request.separate_reasoning:
        thought = min(max(1, natural // 3), max_new_tokens)
        pieces += [(REASONING, word, 0) for word in writer.words(thought)]
    room = max_new_tokens - len(pieces)

    def fits(text: str) -> bool:
        return len(tokenizer.tokenize(text)) < room  # and the end-of-turn token after it

    tool = None
    if constraint is None and (tool_parser or _forced(request)):
        tool = _chosen_tool(request)
    structured = None
    if tool is not None:
        name, parameters = tool
        arguments = json_text(parameters or ANY_OBJECT, draws(), fits, optional=FOLLOWED_OPTIONAL)
        calls.append(ToolCallPlan(name, arguments))
        pieces.append((TOOL_NAME, name, 0))
        pieces += [(TOOL_ARGS, fragment, 0) for fragment in tokenizer.tokenize(arguments)]
    elif constraint is not None and not constraint.any_object:
        structured = constraint.text(draws(), fits)
    else:
        structured = _instructed_json(request, draws, fits, constrained=constraint is not None)
        if structured is None and constraint is not None:
            structured = constraint.text(draws(), fits)
    if structured is not None:
        pieces += [(CONTENT, token, 0) for token in tokenizer.tokenize(structured)]
    elif tool is None:
        visible = min(max(1, natural - 1 - len(pieces)), max_new_tokens - len(pieces) + 1)
        pieces += [(CONTENT, word, 0) for word in writer.words(visible)]
    answer = Answer(pieces, calls, max_new_tokens, request.ignore_eos, writer)
    if not calls:
        answer.stop_at(stop_strings(request.stop))
    return answer


def _instructed_json(
    request: ChatCompletionRequest,
    draws: Draws,
    fits: Callable[[str], bool],
    *,
    constrained: bool,
) -> str | None:
    """JSON for a schema the prompt gives (instruction following), fenced as markdown when the
    prompt asks for a ```json block and no grammar holds the output to bare JSON."""
    texts = [m.text() for m in request.messages if m.role in INSTRUCTING_ROLES]
    schema = prompt_schema(texts)
    if schema is None:
        return None
    try:
        text = json_text(schema, draws(), fits, optional=FOLLOWED_OPTIONAL)
    except ConstraintError:  # a schema no model could satisfy: answer in prose instead
        return None
    return fenced(text) if not constrained and wants_fence(texts) else text


def stop_strings(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else [item for item in stop if item]


def _forced(request: ChatCompletionRequest) -> bool:
    return request.tool_choice is not None and request.tool_choice not in ("auto", "none")


def _chosen_tool(request: ChatCompletionRequest) -> tuple[str, dict[str, Any] | None] | None:
    """Named choice → that tool; "required" → one; "auto" → call when the user spoke last."""
    tools = request.tools or []
    choice = request.tool_choice
    if not tools or choice == "none":
        return None
    if choice is not None and not isinstance(choice, str):
        tool = next(t for t in tools if t.function.name == choice.function.name)
        return tool.function.name, tool.function.parameters
    if choice != "required" and request.messages[-1].role != "user":
        return None
    last = request.messages[-1].text().lower()
    tool = next((t for t in tools if t.function.name.lower() in last), tools[0])
    return tool.function.name, tool.function.parameters
