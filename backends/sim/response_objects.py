"""The Responses API's objects as SGLang 0.5.23 builds them (protocol.ResponsesRequest and
ResponsesResponse.from_request, serving_responses.py on the non-harmony path): the request,
the conversation it continues, the output items and the response document."""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec

from warmgate.backends.sim.answer import CONTENT
from warmgate.backends.sim.choices import Choice
from warmgate.backends.sim.constrained.constraint import ANY_OBJECT
from warmgate.backends.sim.wire import (
    ChatMessage,
    FunctionCall,
    FunctionDefinition,
    MessageToolCall,
    Tool,
    ToolChoice,
    ToolChoiceFunction,
)

ECHOED_EFFORTS = frozenset({"minimal", "low", "medium", "high"})
BOS_EOS_HEADROOM = 2  # ResponsesRequest.to_sampling_params: max_output_tokens - 2


class ResponseTool(msgspec.Struct, kw_only=True):
    type: str
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool = False


class TextFormat(msgspec.Struct, kw_only=True):
    type: str = "text"
    name: str | None = None
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class TextConfig(msgspec.Struct, kw_only=True):
    format: TextFormat | None = None
    verbosity: str | None = None


class Reasoning(msgspec.Struct, kw_only=True):
    effort: str | None = "medium"
    summary: str | None = None


class ResponsesRequest(msgspec.Struct, kw_only=True):
    model: str | None = None
    input: str | list[dict[str, Any]] = ""
    instructions: str | None = None
    max_output_tokens: int | None = None
    previous_response_id: str | None = None
    stream: bool | None = False
    store: bool | None = True
    background: bool | None = False
    temperature: float | None = None
    top_p: float | None = None
    metadata: dict[str, Any] | None = None
    tools: list[ResponseTool] = msgspec.field(default_factory=list)
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool | None = True
    text: TextConfig | None = None
    reasoning: Reasoning | None = None
    truncation: str | None = "disabled"
    user: str | None = None
    stop: str | list[str] | None = None

    def effective_tool_choice(self) -> str | dict[str, Any]:
        """Of the object forms only a named function tool can be forced; others are "auto"."""
        choice = self.tool_choice
        if not isinstance(choice, dict):
            return choice
        name = choice.get("name") or (choice.get("function") or {}).get("name")
        if choice.get("type") in ("function", "custom") and name:
            return {"type": choice["type"], "name": name}
        return "auto"

    def function_tools(self) -> list[Tool]:
        return [
            Tool(
                function=FunctionDefinition(
                    name=tool.name, description=tool.description, parameters=tool.parameters
                )
            )
            for tool in self.tools
            if tool.type == "function" and tool.name
        ]

    def chat_tool_choice(self) -> str | ToolChoice:
        choice = self.effective_tool_choice()
        if isinstance(choice, dict):
            return ToolChoice(function=ToolChoiceFunction(name=choice["name"]))
        return choice

    def output_schema(self) -> Any:
        """The JSON schema `text.format` holds the output to (None for plain text)."""
        fmt = self.text.format if self.text is not None else None
        if fmt is None or fmt.type == "text":
            return None
        if fmt.type == "json_object":
            return ANY_OBJECT
        return fmt.schema

    def max_new_tokens(self) -> int | None:
        if self.max_output_tokens is None:
            return None
        return max(self.max_output_tokens - BOS_EOS_HEADROOM, 1)


def conversation(request: ResponsesRequest, history: list[ChatMessage]) -> list[ChatMessage]:
    """The chat messages the template renders: instructions, the continued conversation, then
    this request's input items (serving_responses._construct_input_messages)."""
    messages: list[ChatMessage] = []
    if request.instructions:
        messages.append(ChatMessage(role="system", content=request.instructions))
    messages += history
    if isinstance(request.input, str):
        messages.append(ChatMessage(role="user", content=request.input))
        return messages
    for item in request.input:
        kind = item.get("type")
        if kind == "function_call":
            call = MessageToolCall(
                id=item.get("call_id"),
                function=FunctionCall(name=item.get("name"), arguments=item.get("arguments")),
            )
            messages.append(ChatMessage(role="assistant", content="", tool_calls=[call]))
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else msgspec.json.encode(output).decode()
            messages.append(
                ChatMessage(role="tool", content=text, tool_call_id=item.get("call_id"))
            )
        elif item.get("role"):
            messages.append(ChatMessage(role=str(item["role"]), content=_text_of(item)))
    return messages


def _text_of(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "".join(str(part.get("text") or "") for part in parts if isinstance(part, dict))


def message_item(
    text: str, *, status: str = "completed", phase: str = "final_answer"
) -> dict[str, Any]:
    content: list[dict[str, Any]] = [
        {"annotations": [], "text": text, "type": "output_text", "logprobs": []}
    ]
    return {"id": f"msg_{uuid.uuid4().hex}", "content": content if status == "completed" else [],
            "role": "assistant", "status": status, "type": "message", "phase": phase}  # fmt: skip


def function_call_item(name: str, arguments: str, *, status: str = "completed") -> dict[str, Any]:
    call_id = f"call_{uuid.uuid4().hex[:24]}"
    return {"arguments": arguments, "call_id": call_id, "name": name, "type": "function_call",
            "id": f"fc_{uuid.uuid4().hex[:8]}", "status": status}  # fmt: skip


def usage(input_tokens: int, output_tokens: int, reasoning_tokens: int) -> dict[str, Any]:
    """ResponsesResponse's usage serializer: the Responses shape of UsageInfo."""
    return {"input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": input_tokens + output_tokens}  # fmt: skip


def status_of(finish_reason: str | None) -> str:
    """serving_responses._status_from_finish_reason."""
    if finish_reason == "length":
        return "incomplete"
    if finish_reason in ("abort", "error"):
        return "failed"
    return "completed"


def response_document(
    request: ResponsesRequest,
    response_id: str,
    status: str,
    output: list[dict[str, Any]],
    usage_fields: dict[str, Any] | None,
    *,
    created_at: int | None = None,
) -> dict[str, Any]:
    """ResponsesResponse.from_request, dumped."""
    # SGLang dumps request.text, or {"format": {"type": "text"}} for text-only output and null
    # otherwise; the OpenAI spec (which the SDK holds answers to) allows no null, so the
    # simulator reports the text format for those too.
    text: dict[str, Any] = {"format": {"type": "text"}}
    if request.text is not None:  # model_dump(by_alias=True, exclude_none=True)
        text = _without_nulls(msgspec.to_builtins(request.text))
    effort = request.reasoning.effort if request.reasoning is not None else None
    tools = [{"type": t.type, "name": t.name, "description": t.description,
              "parameters": t.parameters, "strict": t.strict, "tools": None,
              "defer_loading": None, "format": None} for t in request.tools]  # fmt: skip
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()) if created_at is None else created_at,
        "model": request.model,
        "output": output,
        "status": status,
        "usage": usage_fields,
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "tool_choice": request.effective_tool_choice(),
        "tools": tools,
        "error": {"code": "server_error", "message": "Generation aborted"}
        if status == "failed"
        else None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "previous_response_id": request.previous_response_id,
        "reasoning": {"effort": effort if effort in ECHOED_EFFORTS else None, "summary": None},
        "store": request.store,
        "temperature": request.temperature,
        "text": text,
        "top_p": request.top_p,
        "truncation": request.truncation,
        "user": request.user,
        "metadata": request.metadata or {},
    }


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def final_response(
    asked: ResponsesRequest, choice: Choice, created_at: int | None = None
) -> dict[str, Any]:
    generation, answer = choice.generation, choice.answer
    upto = generation.generated
    status = status_of(generation.finish_reason)
    output: list[dict[str, Any]] = []
    text = answer.text(CONTENT, upto)
    if text:
        output.append(message_item(text, phase="commentary" if answer.calls else "final_answer"))
    if answer.calls and generation.finish_reason == "stop":
        for index, call in enumerate(answer.calls):
            output.append(function_call_item(call.name, answer.arguments(index, upto)))
    fields = usage(generation.prompt_tokens, upto, answer.reasoning_tokens(upto))
    return response_document(asked, generation.rid, status, output, fields, created_at=created_at)


def outputs_as_messages(output: list[dict[str, Any]]) -> list[ChatMessage]:
    """A response's output items as the assistant turn a continuation renders."""
    items: list[dict[str, Any]] = []
    for item in output:
        if item["type"] == "message":
            items.append({"role": "assistant", "content": item["content"]})
        else:
            items.append(item)
    return conversation(ResponsesRequest(input=items), [])
