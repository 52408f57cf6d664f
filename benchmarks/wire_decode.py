"""Cost of validating and rewriting request bodies (proxy.wire), per call, on this CPU.

    .venv/bin/python benchmarks/wire_decode.py [--quick] [--out results/wire_decode.json]

Bodies: a typical ~1 KB chat request (system + user + tool round trip, tools, extras) and a
~500 KB single-message chat request (about 128k tokens). For each: decode + validate into
the RequestView; the view's upstream body for a stream without stream_options (the common
case: one insertion, no scan); and the general rewrite: forced include_usage alone, and with a
model alias to replace as well.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from warmgate.proxy.wire import decode_chat_completion, rewrite_request


def typical_body() -> bytes:
    return json.dumps(
        {
            "model": "demo",
            "messages": [
                {"role": "system", "content": "You are a helpful assistant. " * 8},
                {"role": "user", "content": "What is the weather in Paris today? " * 4},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                        },
                    },
                }
            ],
            "temperature": 0.7,
            "max_tokens": 256,
            "stream": True,
            "top_k": 20,
        }
    ).encode()


def long_body() -> bytes:
    return json.dumps(
        {
            "model": "demo",
            "messages": [{"role": "user", "content": "lorem ipsum dolor sit amet " * 19_000}],
            "stream": True,
        }
    ).encode()


def per_call_us(action: Callable[[], object], seconds: float) -> float:
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(50):
            action()
        calls += 50
    return elapsed / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="0.2 s per figure instead of 2 s")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    seconds = 0.2 if args.quick else 2.0
    figures: dict[str, float | int] = {}
    for name, body in (("typical", typical_body()), ("long", long_body())):
        figures[f"{name}_bytes"] = len(body)
        figures[f"{name}_decode_us"] = per_call_us(partial(decode_chat_completion, body), seconds)
        view = decode_chat_completion(body)
        figures[f"{name}_upstream_body_us"] = per_call_us(
            partial(view.upstream_body, body, "demo"), seconds
        )
        figures[f"{name}_rewrite_usage_us"] = per_call_us(
            partial(rewrite_request, body, include_usage=True), seconds
        )
        figures[f"{name}_rewrite_model_and_usage_us"] = per_call_us(
            partial(rewrite_request, body, model="served", include_usage=True), seconds
        )
    for key, value in figures.items():
        print(f"{key:24} {value:12.1f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
