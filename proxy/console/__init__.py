"""The operator console at `/console`: usage, latency, fleet and keys, drawn in the browser from
the admin JSON endpoints, behind the admin key; and the interactive API reference at `/docs`.

`Console` gathers what the app mounts: the public routes (the login form, the pages, their
assets, the docs), the report endpoints that go behind the admin guard, and the guard wrapper
that lets a console session through where the admin key would pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from litestar.handlers import HTTPRouteHandler

from warmgate.proxy.console.access import Guard, session_or_admin
from warmgate.proxy.console.assets import Assets, asset_routes
from warmgate.proxy.console.pages import KeyCheck, page_routes
from warmgate.proxy.console.reports_api import report_routes
from warmgate.proxy.console.session import ConsoleSessions
from warmgate.proxy.keys.ring import KeyRing
from warmgate.proxy.keys.store import KeyStore
from warmgate.proxy.ledger.reports import LedgerReports
from warmgate.proxy.ledger.rollup import UsageRollup
from warmgate.proxy.ledger.writer import Ledger
from warmgate.proxy.routing.pool import Pool

__all__ = ["Console", "ConsoleSessions"]


class Console:
    def __init__(
        self,
        *,
        admin_key: str | None,
        check_key: KeyCheck,
        ledger: Ledger,
        pool: Pool,
        key_store: KeyStore,
        keys: KeyRing,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessions = ConsoleSessions(admin_key, clock=clock)
        self.assets = Assets()
        self._check_key = check_key
        # Month views read the hourly rollup, not a month of rows (proxy/ledger/rollup.py).
        self._reports = LedgerReports(ledger, rollup=UsageRollup(clock=clock))
        self._pool = pool
        self._key_store = key_store
        self._keys = keys
        self._clock = clock

    async def key_names(self, ids: Iterable[str]) -> dict[str, str]:
        """Names of the key ids: stored keys (revoked ones too), then the configured ones."""
        names = {key.id: key.name for _, key in await self._key_store.load()}
        for key_id in ids:
            if key_id not in names and (key := self._keys.get(key_id)) is not None:
                names[key_id] = key.name
        return names

    def routes(self) -> list[HTTPRouteHandler]:
        """The routes anyone may reach: the login form, the console shell (which redirects
        without a session), its assets and the API docs."""
        return [
            *page_routes(self.sessions, self.assets, self._check_key),
            *asset_routes(self.assets),
        ]

    def admin_routes(self) -> list[HTTPRouteHandler]:
        """The report endpoints, to be mounted behind `guard`."""
        return report_routes(self._reports, self._pool, self.key_names, clock=self._clock)

    def guard(self, admin: Guard) -> Guard:
        """The admin guard, also admitting a console session (with its CSRF token)."""
        return session_or_admin(self.sessions, admin)
