"""The responses one replica keeps in memory (SGLang's response_store and msg_store)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from aiohttp import web

from warmgate.backends.sim.choices import Choice
from warmgate.backends.sim.wire import ChatMessage

STORED_RESPONSES = 1024


class ResponseStore:
    """Responses this replica created, the conversation each ends, and the tasks of the
    background ones (cancelled when the replica stops)."""

    def __init__(self, capacity: int = STORED_RESPONSES) -> None:
        self._capacity = capacity
        self._responses: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.histories: dict[str, list[ChatMessage]] = {}  # the messages a continuation renders
        self.tasks: dict[str, asyncio.Task[None]] = {}  # background responses still to finish
        self.running: dict[str, Choice] = {}  # background responses in the scheduler
        self.background: set[str] = set()  # ids of the stored background responses

    def put(self, response: dict[str, Any], history: list[ChatMessage]) -> None:
        self._responses[response["id"]] = response
        self.histories[response["id"]] = history
        while len(self._responses) > self._capacity:
            evicted, _ = self._responses.popitem(last=False)
            self.histories.pop(evicted, None)
            self.background.discard(evicted)

    def get(self, response_id: str) -> dict[str, Any] | None:
        return self._responses.get(response_id)

    async def close(self, app: web.Application) -> None:
        """An on_cleanup hook of the replica's app: end the background tasks."""
        del app
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
