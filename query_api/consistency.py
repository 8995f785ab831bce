"""Read-your-writes: wait, within a bound, until a read model has applied a token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from domain.consistency import ConsistencyToken, InvalidConsistencyToken


class NotYetApplied(Exception):
    def __init__(self, projection: str, missing: list[tuple[int, int]], applied: dict[int, int], waited_ms: int):
        self.projection, self.missing, self.applied, self.waited_ms = projection, missing, applied, waited_ms
        where = ", ".join(f"partition {p} offset {o} (applied up to {applied.get(p, -1)})" for p, o in missing)
        super().__init__(f"read model {projection} has not applied {where} after {waited_ms} ms")


async def wait_for(raw_token: str, topic: str, projection: str,
                   positions: Callable[[], Awaitable[dict[int, int]]], timeout_ms: int) -> None:
    token = ConsistencyToken.decode(raw_token)
    if token.topic != topic:
        raise InvalidConsistencyToken(f"consistency_token names topic {token.topic!r}, expected {topic!r}")
    started = time.monotonic()
    delay = 0.002
    while True:
        applied = await positions()
        if token.satisfied_by(applied):
            return
        waited = time.monotonic() - started
        if waited * 1000 >= timeout_ms:
            raise NotYetApplied(projection, token.missing(applied), applied, int(waited * 1000))
        await asyncio.sleep(min(delay, timeout_ms / 1000 - waited))
        delay = min(delay * 2, 0.05)
