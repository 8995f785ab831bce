"""Wake-ups when the Postgres read model's positions move: one LISTEN connection per process
on settings.APPLIED_CHANNEL, which the Postgres projector notifies in each batch's commit.

A read-your-writes wait (domain.consistency.wait_until_applied) polls the positions with a
growing delay (2 ms, doubling to 50 ms); with these notices it sleeps until the next commit
instead, so a write is found as soon as it is applied rather than on the next poll. Notices
only shorten the sleep: while the connection is down (or before it is up) the wait polls as
before, and a reconnect is tried in the background.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from settings import APPLIED_CHANNEL

log = logging.getLogger(__name__)

RECONNECT_S = 2.0


class AppliedNotices:
    """`generation` counts the commits heard; `after(generation, timeout)` returns once a later
    one is heard, or after `timeout` seconds (read the generation before the positions: a
    commit between the two is not missed)."""

    def __init__(self, dsn: str, channel: str = APPLIED_CHANNEL):
        self.dsn, self.channel = dsn, channel
        self.generation = 0
        self._heard = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._keeper: asyncio.Task | None = None
        self._lost = asyncio.Event()

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        """Listen now if Postgres answers, and keep listening (reconnecting) in the background."""
        await self._connect()
        self._keeper = asyncio.create_task(self._keep())

    async def close(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()

    async def after(self, generation: int, timeout: float) -> None:
        if self.generation > generation:
            return
        try:
            await asyncio.wait_for(self._heard.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def _notice(self, *_args) -> None:
        self.generation += 1
        heard, self._heard = self._heard, asyncio.Event()
        heard.set()

    async def _connect(self) -> None:
        try:
            conn = await asyncpg.connect(self.dsn, timeout=2.0)
            await conn.add_listener(self.channel, self._notice)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
            log.warning("not listening for applied positions (%s); read-your-writes waits poll", exc)
            self._lost.set()
            return
        conn.add_termination_listener(lambda _conn: self._lost.set())
        self._conn = conn
        self._lost.clear()
        self._notice()  # whatever committed while nobody listened: waiters look again

    async def _keep(self) -> None:
        while True:
            await self._lost.wait()
            await asyncio.sleep(RECONNECT_S)
            await self._connect()
