"""POST /v1/chat/completions, answered with serving_chat.py's bytes."""

from __future__ import annotations

import time
import uuid

from aiohttp import web

from warmgate.backends.sim import choices
from warmgate.backends.sim.answer import CONTENT, REASONING, Answer, Draws, plan_chat
from warmgate.backends.sim.choices import Choice
from warmgate.backends.sim.constrained.constraint import Constraint, ConstraintError, select
from warmgate.backends.sim.constrained.grammar import GrammarError
from warmgate.backends.sim.constrained.schema_check import check_structure
from warmgate.backends.sim.errors import SimError
from warmgate.backends.sim.generation import Generation, QueueFullError
from warmgate.backends.sim.logprobs import Logprobs
from warmgate.backends.sim.prompt import render_chat
from warmgate.backends.sim.replica import Replica
from warmgate.backends.sim.routes import intake
from warmgate.backends.sim.routes.chat_stream import ChatStream, refused
from warmgate.backends.sim.sampling import check_sampling
from warmgate.backends.sim.validation import field_error
from warmgate.backends.sim.wire import (
    ChatCompletionRequest,
    ToolChoice,
    chat_decoder,
    encode,
    sampling_of,
)
from warmgate.backends.sim.writer import Writer

MAX_CHOICES = 128
CONSTRAINT_CONFLICT = (
    "tool_choice 'required' or a named tool cannot be combined with response_format, regex, "
    "or ebnf: the tool-call constraint and the output constraint cannot both be honored."
)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    replica = intake.replica_of(request)
    try:
        body = await intake.read_body(request, replica)
        chat: ChatCompletionRequest = intake.decode(chat_decoder, body, "ChatCompletionRequest")
        validate(chat)
        intake.check_model(chat.model, replica.config)
        constraint = output_constraint(chat)
        rid, planned = plan(chat, replica, constraint)
        check_sampling(sampling_of(chat))
        await intake.pass_faults(replica)
    except SimError as error:
        return intake.error_response(error)
    except ConstraintError as failed:  # the scheduler's abort: a 400, in-band once streaming
        if chat.stream:
            return await refused(request, replica, str(failed))
        return intake.error_response(SimError(str(failed)))
    if chat.stream:
        return await ChatStream(request, replica, chat, rid, planned).run()
    try:
        await choices.run_to_end(replica, planned)
    except QueueFullError as full:
        return intake.error_response(SimError(str(full), 503, "503"))
    return intake.json_response(response_body(chat, rid, planned, replica))


def validate(chat: ChatCompletionRequest) -> None:
    """serving_chat._validate_request, the checks that apply here."""
    if not chat.messages:
        raise SimError("Messages cannot be empty.")
    tools = chat.tools or []
    choice = chat.tool_choice
    if isinstance(choice, str) and choice not in ("auto", "required", "none"):
        raise field_error(
            "tool_choice", "literal_error", "Input should be 'auto', 'required' or 'none'", choice
        )
    if isinstance(choice, str) and choice.lower() == "required" and not tools:
        raise SimError("Tools cannot be empty if tool choice is set to required.")
    if choice is not None and not isinstance(choice, str):
        if not tools:
            raise SimError("Tools cannot be empty if tool choice is set to a specific tool.")
        if not any(t.function.name == choice.function.name for t in tools):
            raise SimError(f"Tool '{choice.function.name}' not found in tools list.")
    for position, tool in enumerate(tools):
        if tool.function.parameters is None:
            continue
        try:
            check_structure(tool.function.parameters)
        except GrammarError as error:
            raise SimError(
                f"Tool {position} function has invalid 'parameters' schema: {error}"
            ) from None
    fmt = chat.response_format
    if fmt is not None and fmt.type == "json_schema" and fmt.constrained_schema() is None:
        raise SimError("schema_ is required for json_schema response format request.")
    if not 1 <= chat.n <= MAX_CHOICES:
        raise SimError(f"n must be between 1 and {MAX_CHOICES}.")


def output_constraint(chat: ChatCompletionRequest) -> Constraint | None:
    """The grammar the answer is held to (ChatCompletionRequest.to_sampling_params); a forced
    tool call besides it is a 400, a grammar that does not compile a ConstraintError."""
    fmt = chat.response_format
    schema = fmt.constrained_schema() if fmt is not None else None
    if schema is None and chat.regex is None and chat.ebnf is None:
        return None
    forced = chat.tool_choice == "required" or isinstance(chat.tool_choice, ToolChoice)
    if forced and chat.tools:
        raise SimError(CONSTRAINT_CONFLICT, 400, "BadRequest")
    return select(schema, chat.regex, chat.ebnf)


def plan(
    chat: ChatCompletionRequest,
    replica: Replica,
    constraint: Constraint | None = None,
    rid: str | None = None,
) -> tuple[str, list[Choice]]:
    """The request id and, per choice, its answer and its generation."""
    config = replica.config
    requested = chat.max_completion_tokens or chat.max_tokens
    if requested and requested > config.context_length and not config.allow_auto_truncate:
        raise SimError(
            f"max_completion_tokens is too large: {requested}.This model supports at most "
            f"{config.context_length} completion tokens."
        )
    prompt = render_chat(chat.messages, chat.tools, replica.tokenizer, config.seed, chat.seed)
    budget = intake.max_new_tokens(requested, len(prompt), config)
    rid = rid or chat.rid or uuid.uuid4().hex
    planned = []
    for index in range(chat.n):
        draws = draws_for(chat.seed, index, replica)
        answer = plan_chat(
            chat,
            Writer(prompt.seed + index),
            replica.tokenizer,
            config.output_tokens_mean,
            budget,
            reasoning=config.reasoning_parser is not None,
            tool_parser=config.tool_call_parser is not None,
            draws=draws,
            constraint=constraint,
        )
        generation = Generation(
            rid if chat.n == 1 else f"{rid}_{index}",
            prompt_tokens=len(prompt),
            block_hashes=prompt.block_hashes,
            output_tokens=answer.output_tokens,
            stop_reason=answer.stop_reason,
        )
        logprobs = None
        if chat.logprobs:
            top = chat.top_logprobs or 0
            logprobs = Logprobs(answer.token_texts(), top, draws().getrandbits(64))
        planned.append(Choice(index, answer, generation, logprobs))
    return rid, planned


def draws_for(seed: int | None, index: int, replica: Replica) -> Draws:
    """The random source of choice `index`'s structured output and logprobs."""
    return Draws(None if seed is None else seed * 1_000_003 + index, replica.draws)


def finish_reason(answer: Answer, generation: Generation) -> tuple[str, int | str | None]:
    reason = generation.finish_reason or "abort"
    if reason == "stop" and answer.calls:
        return "tool_calls", None
    return reason, answer.matched if reason == "stop" else None


def response_body(
    chat: ChatCompletionRequest, rid: str, planned: list[Choice], replica: Replica
) -> bytes:
    """ChatCompletionResponse as serving_chat._build_chat_response dumps it."""
    body_choices = []
    reasoning_tokens = 0
    for choice in planned:
        answer, upto = choice.answer, choice.generation.generated
        reasoning = answer.text(REASONING, upto) or None
        reasoning_tokens += answer.reasoning_tokens(upto)
        message: dict[str, object] = {
            "role": "assistant",
            "content": answer.text(CONTENT, upto),
            "reasoning_content": reasoning,
        }
        if answer.calls and choice.generation.finish_reason == "stop":
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "index": index,
                    "type": "function",
                    "function": {"name": call.name, "arguments": answer.arguments(index, upto)},
                }
                for index, call in enumerate(answer.calls)
            ]
        reason, matched = finish_reason(answer, choice.generation)
        body_choices.append(
            {
                "index": choice.index,
                "message": message,
                "logprobs": choice.logprobs.chat(0, upto) if choice.logprobs else None,
                "finish_reason": reason,
                "matched_stop": matched,
            }
        )
    body = {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": chat.model,
        "choices": body_choices,
        "usage": choices.usage(planned, reasoning_tokens, replica.config.enable_cache_report),
        "metadata": {"weight_version": "default"},
    }
    return encode(body)
