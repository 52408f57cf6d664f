"""Load generator: asyncio + aiohttp in its own process, closed loop, JSON results.

Two workload shapes:
- `bodies`: a fixed list of request bodies, cycled, by `concurrency` workers until `requests` are
  done or `duration_s` has passed (closed loop: each worker sends its next request when the last
  one finished).
- `conversations`: multi-turn chats; a worker takes a conversation and plays its turns in order,
  each turn appending the previous answer and the next user message (so prefixes are shared and
  grow, as in a real chat).

Run it as `python -m benchmarks.loadgen --base-url URL --concurrency 64 --requests 5000 --stream
--out result.json`; the other benchmarks start it as a subprocess pinned to its own core.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec

from benchmarks.progress import Progress
from benchmarks.stats import Outcome, summarize


class Conversation(msgspec.Struct):
    body: dict[str, Any]  # the request body of the first turn, minus the user message
    turns: list[str]  # user messages, one per turn


class Workload(msgspec.Struct):
    path: str = "/v1/chat/completions"
    bodies: list[dict[str, Any]] = []
    conversations: list[Conversation] = []


class _Details(msgspec.Struct):
    cached_tokens: int | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: _Details | None = None


class _Message(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Message | None = None
    message: _Message | None = None
    text: str | None = None


class _Reply(msgspec.Struct):
    """The fields of a chat/completions response or stream chunk that the statistics need."""

    choices: list[_Choice] = []
    usage: _Usage | None = None
    error: msgspec.Raw | None = None


_decode_reply = msgspec.json.Decoder(_Reply).decode
_encode = msgspec.json.Encoder().encode
_T = TypeVar("_T")


def _content_of(reply: _Reply) -> str:
    parts: list[str] = []
    for choice in reply.choices:
        message = choice.delta or choice.message
        if message is not None:
            parts.append(message.content or "")
            parts.append(message.reasoning_content or "")
        if choice.text:
            parts.append(choice.text)
    return "".join(parts)


def _usage_of(reply: _Reply) -> tuple[int, int, int]:
    usage = reply.usage
    if usage is None:
        return 0, 0, 0
    details = usage.prompt_tokens_details
    cached = details.cached_tokens or 0 if details is not None else 0
    return usage.prompt_tokens, cached, usage.completion_tokens


class Client:
    """Sends one request and measures it; `epoch` is the run's start (perf_counter). Given
    several URLs (edges behind a load balancer), each request goes to one drawn at random."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        api_key: str | None,
        *,
        spread: Sequence[str] = (),
        seed: int = 0,
    ) -> None:
        self.session = session
        self.url = url
        self.spread = list(spread)
        self._rng = random.Random(seed)
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.epoch = time.perf_counter()

    async def send(self, body: bytes, stream: bool, keep_text: bool = False) -> tuple[Outcome, str]:
        url = self._rng.choice(self.spread) if self.spread else self.url
        started = time.perf_counter()
        try:
            async with self.session.post(url, data=body, headers=self.headers) as resp:
                if resp.status != 200:
                    text = (await resp.read())[:200].decode(errors="replace")
                    return self._failed(started, resp.status, text), ""
                if stream:
                    return await self._read_stream(resp, started, keep_text)
                raw = await resp.read()
                done = time.perf_counter()
        except (aiohttp.ClientError, TimeoutError) as exc:
            return self._failed(started, 0, f"{type(exc).__name__}: {exc}"[:200]), ""
        reply = _decode_reply(raw)
        prompt, cached, completion = _usage_of(reply)
        outcome = Outcome(
            status=200,
            started_s=started - self.epoch,
            e2e_s=done - started,
            ttft_s=done - started,
            itl_s=[],
            prompt_tokens=prompt,
            cached_tokens=cached,
            completion_tokens=completion,
        )
        return outcome, _content_of(reply) if keep_text else ""

    async def _read_stream(
        self, resp: aiohttp.ClientResponse, started: float, keep_text: bool
    ) -> tuple[Outcome, str]:
        first: float | None = None
        last_content = started
        gaps: list[float] = []
        chunks = 0
        usage = (0, 0, 0)
        error: str | None = None
        text: list[str] = []
        pending = b""
        async for data in resp.content.iter_any():
            now = time.perf_counter()
            events = (pending + data).split(b"\n\n")
            pending = events.pop()
            for event in events:
                if not event.startswith(b"data:"):
                    continue
                payload = event[5:].strip()
                if payload == b"[DONE]":
                    break
                reply = _decode_reply(payload)
                if reply.error is not None:
                    error = f"in-band error: {bytes(reply.error)[:150].decode(errors='replace')}"
                    continue
                if reply.usage is not None:
                    usage = _usage_of(reply)
                content = _content_of(reply)
                if content:
                    chunks += 1
                    if first is None:
                        first = now
                    else:
                        gaps.append(now - last_content)
                    last_content = now
                    if keep_text:
                        text.append(content)
        done = time.perf_counter()
        prompt, cached, completion = usage
        outcome = Outcome(
            status=200,
            started_s=started - self.epoch,
            e2e_s=done - started,
            ttft_s=None if first is None else first - started,
            itl_s=gaps,
            prompt_tokens=prompt,
            cached_tokens=cached,
            completion_tokens=completion or chunks,
            error=error,
        )
        return outcome, "".join(text)

    def _failed(self, started: float, status: int, error: str) -> Outcome:
        now = time.perf_counter()
        return Outcome(status, started - self.epoch, now - started, None, [], 0, 0, 0, error)


def _is_stream(body: dict[str, Any]) -> bool:
    return bool(body.get("stream"))


async def run_bodies(
    client: Client,
    bodies: Sequence[dict[str, Any]],
    *,
    concurrency: int,
    requests: int | None,
    duration_s: float | None,
    progress: Progress,
) -> list[Outcome]:
    encoded = [(_encode(b), _is_stream(b)) for b in bodies]
    cycle = itertools.cycle(encoded)
    issued = itertools.count()
    deadline = None if duration_s is None else time.perf_counter() + duration_s
    outcomes: list[Outcome] = []

    async def worker() -> None:
        while True:
            if requests is not None and next(issued) >= requests:
                return
            if deadline is not None and time.perf_counter() >= deadline:
                return
            body, stream = next(cycle)
            outcome, _ = await client.send(body, stream)
            outcomes.append(outcome)
            progress.advance(outcome.ok)

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return outcomes


async def run_conversations(
    client: Client,
    conversations: Sequence[Conversation],
    *,
    concurrency: int,
    duration_s: float | None,
    progress: Progress,
) -> list[Outcome]:
    queue = iter(conversations)
    deadline = None if duration_s is None else time.perf_counter() + duration_s
    outcomes: list[Outcome] = []

    async def play(conversation: Conversation) -> None:
        body = dict(conversation.body)
        messages = list(body.get("messages", []))
        stream = _is_stream(body)
        for number, turn in enumerate(conversation.turns, start=1):
            if deadline is not None and time.perf_counter() >= deadline:
                return
            messages.append({"role": "user", "content": turn})
            body["messages"] = messages
            outcome, answer = await client.send(_encode(body), stream, keep_text=True)
            outcome.turn = number
            outcomes.append(outcome)
            progress.advance(outcome.ok)
            if not outcome.ok:
                return
            messages.append({"role": "assistant", "content": answer})

    async def worker() -> None:
        for conversation in queue:
            await play(conversation)

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return outcomes


async def run(
    base_url: str,
    api_key: str | None,
    workload: Workload,
    *,
    concurrency: int,
    requests: int | None = None,
    duration_s: float | None = None,
    warmup: int = 0,
    label: str = "load",
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """Runs the workload and returns the summary plus the raw outcomes under `outcomes`.
    `base_url` may list several gateways, comma-separated: each request goes to a random one."""
    connector = aiohttp.TCPConnector(limit=max(concurrency, 1), keepalive_timeout=4.0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=900.0)
    urls = [part.rstrip("/") + workload.path for part in base_url.split(",")]
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        client = Client(session, urls[0], api_key, spread=urls if len(urls) > 1 else ())
        if warmup and workload.bodies:
            silent = Progress("warm-up", warmup, enabled=False)
            await run_bodies(
                client,
                workload.bodies,
                concurrency=min(concurrency, warmup),
                requests=warmup,
                duration_s=None,
                progress=silent,
            )
        client.epoch = time.perf_counter()
        total = requests if workload.bodies else sum(len(c.turns) for c in workload.conversations)
        progress = Progress(label, total, duration_s, enabled=show_progress)
        if workload.conversations:
            outcomes = await run_conversations(
                client,
                workload.conversations,
                concurrency=concurrency,
                duration_s=duration_s,
                progress=progress,
            )
        else:
            outcomes = await run_bodies(
                client,
                workload.bodies,
                concurrency=concurrency,
                requests=requests,
                duration_s=duration_s,
                progress=progress,
            )
        wall_s = time.perf_counter() - client.epoch
        progress.close()
    summary = summarize(outcomes, wall_s)
    summary["concurrency"] = concurrency
    summary["outcomes"] = outcomes
    return summary


def run_subprocess(
    base_url: str,
    api_key: str | None,
    workload: Workload,
    *,
    workdir: Path,
    concurrency: int,
    requests: int | None = None,
    duration_s: float | None = None,
    warmup: int = 0,
    label: str = "load",
    cpus: str | None = None,
    raw: bool = False,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Runs the load generator in its own process (pinned to `cpus`) and returns its JSON."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec = workdir / f"workload-{os.getpid()}-{next(_spawned)}.json"
    out = spec.with_suffix(".out.json")
    spec.write_bytes(_encode(workload))
    argv = [sys.executable, "-m", "benchmarks.loadgen", "--base-url", base_url]
    argv += ["--workload", str(spec), "--concurrency", str(concurrency), "--label", label]
    argv += ["--warmup", str(warmup), "--out", str(out), "--progress", "auto"]
    if api_key:
        argv += ["--api-key", api_key]
    if requests is not None:
        argv += ["--requests", str(requests)]
    if duration_s is not None:
        argv += ["--duration", str(duration_s)]
    if raw:
        argv.append("--raw")
    if cpus and shutil.which("taskset"):
        argv = ["taskset", "-c", cpus, *argv]
    root = Path(__file__).resolve().parent.parent
    subprocess.run(argv, check=True, cwd=root, timeout=timeout_s)
    result: dict[str, Any] = msgspec.json.decode(out.read_bytes())
    spec.unlink()
    out.unlink()
    return result


_spawned = itertools.count()


def chat_body(model: str, prompt: str, max_tokens: int, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
    return body


def event_loop_runner() -> Callable[[Coroutine[Any, Any, _T]], _T]:
    """uvloop's runner where it is installed (as the servers under test use), else asyncio's."""
    try:
        import uvloop  # noqa: PLC0415 - optional: the benchmarks also run without it
    except ImportError:
        return asyncio.run
    return uvloop.run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__)
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8080")
    parser.add_argument("--api-key", default=None)
    parser.add_argument(
        "--workload", type=Path, help="JSON file: a Workload (bodies or conversations)"
    )
    parser.add_argument("--model", default="demo", help="without --workload: the model to ask")
    parser.add_argument("--prompt", default="Say hello.", help="without --workload: the message")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None, help="seconds (instead of a count)")
    parser.add_argument("--warmup", type=int, default=0, help="requests sent first, not counted")
    parser.add_argument("--label", default="load")
    parser.add_argument("--raw", action="store_true", help="keep every request's outcome in --out")
    parser.add_argument("--progress", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--out", type=Path, help="write the JSON here (default: stdout)")
    args = parser.parse_args(argv)
    if args.requests is None and args.duration is None:
        args.requests = 1000
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workload is not None:
        workload = msgspec.json.decode(args.workload.read_bytes(), type=Workload)
    else:
        body = chat_body(args.model, args.prompt, args.max_tokens, args.stream)
        workload = Workload(bodies=[body])
    show = {"auto": None, "on": True, "off": False}[args.progress]
    result = event_loop_runner()(
        run(
            args.base_url,
            args.api_key,
            workload,
            concurrency=args.concurrency,
            requests=args.requests,
            duration_s=args.duration,
            warmup=args.warmup,
            label=args.label,
            show_progress=show,
        )
    )
    if not args.raw:
        del result["outcomes"]
    data = msgspec.json.format(msgspec.json.encode(result), indent=1)
    if args.out is None:
        sys.stdout.buffer.write(data + b"\n")
    else:
        args.out.write_bytes(data + b"\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
