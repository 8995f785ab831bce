"""Consistency tokens: where in the log a write landed, so a read can wait for it.

Format: ``<topic>/<partition>:<offset>[,<partition>:<offset>...]`` — readable in logs,
opaque to clients. A token is satisfied once a read model has applied, in every
partition named, an offset at least as high.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


class InvalidConsistencyToken(ValueError):
    pass


@dataclass(frozen=True)
class ConsistencyToken:
    topic: str
    offsets: tuple[tuple[int, int], ...]  # (partition, offset), sorted by partition

    @classmethod
    def of(cls, topic: str, positions: "list[tuple[int, int]]") -> "ConsistencyToken":
        highest: dict[int, int] = {}
        for partition, offset in positions:
            highest[partition] = max(offset, highest.get(partition, -1))
        return cls(topic, tuple(sorted(highest.items())))

    def encode(self) -> str:
        return f"{self.topic}/" + ",".join(f"{p}:{o}" for p, o in self.offsets)

    @classmethod
    def decode(cls, raw: str) -> "ConsistencyToken":
        topic, sep, rest = raw.rpartition("/")
        if not sep or not topic or not rest:
            raise InvalidConsistencyToken(f"consistency_token {raw!r} is not of the form <topic>/<partition>:<offset>")
        positions = []
        for part in rest.split(","):
            p, colon, o = part.partition(":")
            if not colon or not p.isdigit() or not o.isdigit():
                raise InvalidConsistencyToken(f"consistency_token {raw!r}: {part!r} is not <partition>:<offset>")
            positions.append((int(p), int(o)))
        return cls.of(topic, positions)

    def satisfied_by(self, applied: dict[int, int]) -> bool:
        """`applied` maps partition -> highest offset applied by the read model."""
        return all(applied.get(p, -1) >= o for p, o in self.offsets)

    def missing(self, applied: dict[int, int]) -> list[tuple[int, int]]:
        return [(p, o) for p, o in self.offsets if applied.get(p, -1) < o]


class NotYetApplied(Exception):
    def __init__(self, projection: str, missing: list[tuple[int, int]], applied: dict[int, int], waited_ms: int):
        self.projection, self.missing, self.applied, self.waited_ms = projection, missing, applied, waited_ms
        where = ", ".join(f"partition {p} offset {o} (applied up to {applied.get(p, -1)})" for p, o in missing)
        super().__init__(f"read model {projection} has not applied {where} after {waited_ms} ms")


async def wait_until_applied(raw_token: str, topic: str, projection: str,
                             positions: Callable[[], Awaitable[dict[int, int]]], timeout_ms: int) -> None:
    """Poll `positions` (partition -> applied offset) until the token is covered, or raise
    NotYetApplied after `timeout_ms`. Raises InvalidConsistencyToken for a malformed token."""
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
