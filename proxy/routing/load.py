"""Polling of each backend's own load view, SGLang's `GET /v1/loads`, off the request path.

Our outstanding work counts only this gateway's requests; the backend's view also counts other
edges'. A backend without the endpoint (404) is not asked again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import httpx
import msgspec

from warmgate.proxy.routing.member import Member, RemoteLoad
from warmgate.proxy.settings import RoutingSettings


class RankLoad(msgspec.Struct):
    num_running_reqs: int = 0
    num_waiting_reqs: int = 0
    num_waiting_uncached_tokens: int = 0
    num_used_tokens: int = 0
    token_usage: float = 0.0


class LoadsResponse(msgspec.Struct):
    loads: list[RankLoad] = []


_decode = msgspec.json.Decoder(LoadsResponse).decode


class LoadPoller:
    def __init__(
        self,
        members: Callable[[], Iterable[Member]],
        settings: RoutingSettings,
        client: httpx.AsyncClient,
        clock: Callable[[], float],
    ) -> None:
        self._members = members
        self._settings = settings
        self._client = client
        self._clock = clock
        self._unsupported: set[str] = set()
        self.rounds = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._settings.load_poll_interval_s)
            await self.poll_all()

    async def poll_all(self) -> None:
        members = [
            m for m in self._members() if not m.retired and m.backend.id not in self._unsupported
        ]
        async with asyncio.TaskGroup() as group:
            for member in members:
                group.create_task(self.poll(member))
        self.rounds += 1

    async def poll(self, member: Member) -> bool:
        """Read one backend's load; True when it answered with a load report."""
        backend = member.backend
        headers = {"Authorization": f"Bearer {backend.api_key}"} if backend.api_key else {}
        try:
            response = await self._client.get(
                backend.url + "/v1/loads",
                params={"include": "core"},
                headers=headers,
                timeout=self._settings.load_poll_timeout_s,
            )
        except (httpx.HTTPError, httpx.InvalidURL):
            return False
        if response.status_code == 404:
            self._unsupported.add(backend.id)
            return False
        if response.status_code != 200:
            return False
        try:
            report = _decode(response.content)
        except msgspec.DecodeError:
            return False
        member.remote = RemoteLoad(
            requests=sum(r.num_running_reqs + r.num_waiting_reqs for r in report.loads),
            tokens=sum(r.num_used_tokens + r.num_waiting_uncached_tokens for r in report.loads),
            token_usage=max((r.token_usage for r in report.loads), default=0.0),
            read_at=self._clock(),
        )
        return True
