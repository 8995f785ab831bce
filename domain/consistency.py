"""Consistency tokens: where in the log a write landed, so a read can wait for it.

Format: ``<topic>/<partition>:<offset>[,<partition>:<offset>...]`` — readable in logs,
opaque to clients. A token is satisfied once a read model has applied, in every
partition named, an offset at least as high.

A token that cannot exist is refused (InvalidConsistencyToken: the APIs answer 400), never
waited for (a 503 would invite retrying forever): malformed, of another topic, naming a
partition the topic does not have or an offset past a Kafka offset's range (int64), or,
once the log's ends are known, an offset its partition has not reached (a token names a
record that was written).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


class InvalidConsistencyToken(ValueError):
    pass


MAX_OFFSET = 2**63 - 1  # Kafka offsets are signed 64-bit
MAX_LENGTH = 4_096  # a real one names each partition at most once: a few hundred characters
_POSITION = re.compile(r"([0-9]+):([0-9]+)")  # ASCII digits only (int() takes others too; MAX_LENGTH keeps int() safe)


def _shown(raw: str) -> str:
    """The start of a token as an error message may quote it."""
    return repr(raw[:80] + ("…" if len(raw) > 80 else ""))


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
        if len(raw) > MAX_LENGTH:
            raise InvalidConsistencyToken(f"consistency_token is longer than {MAX_LENGTH} characters")
        topic, sep, rest = raw.rpartition("/")
        if not sep or not topic or not rest:
            raise InvalidConsistencyToken(f"consistency_token {_shown(raw)} is not of the form "
                                          "<topic>/<partition>:<offset>")
        positions = []
        for part in rest.split(","):
            match = _POSITION.fullmatch(part)
            if match is None:
                raise InvalidConsistencyToken(f"consistency_token {_shown(raw)}: {_shown(part)} is not "
                                              "<partition>:<offset>")
            partition, offset = int(match[1]), int(match[2])
            if offset > MAX_OFFSET:
                raise InvalidConsistencyToken(f"consistency_token {_shown(raw)}: offset {offset} is past any "
                                              f"Kafka offset (at most {MAX_OFFSET})")
            positions.append((partition, offset))
        return cls.of(topic, positions)

    @classmethod
    def checked(cls, raw: str, topic: str, partitions: int | None = None) -> "ConsistencyToken":
        """A token of `topic` that can exist in a topic of `partitions` partitions."""
        token = cls.decode(raw)
        if token.topic != topic:
            raise InvalidConsistencyToken(f"consistency_token names topic {_shown(token.topic)}, expected {topic!r}")
        if partitions is not None and token.offsets[-1][0] >= partitions:
            raise InvalidConsistencyToken(f"consistency_token names partition {token.offsets[-1][0]}; "
                                          f"{topic} has partitions 0-{partitions - 1}")
        return token

    def unwritten(self, ends: dict[int, int]) -> list[tuple[int, int]]:
        """The positions no record holds yet: at or past their partition's end (`ends`: partition
        -> the next offset to be written)."""
        return [(p, o) for p, o in self.offsets if o >= ends.get(p, 0)]

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


class Notices(Protocol):
    """What tells a wait that positions moved (adapters.applied_notices.AppliedNotices)."""
    generation: int

    async def after(self, generation: int, timeout: float) -> None: ...


MAX_POLL_S = 0.05  # between polls when notices wake the wait as soon as the positions move
MAX_POLL_UNNOTIFIED_S = 0.01


async def wait_until_applied(raw_token: str, topic: str, projection: str,
                             positions: Callable[[], Awaitable[dict[int, int]]], timeout_ms: int,
                             partitions: int | None = None,
                             log_ends: Callable[[], Awaitable[dict[int, int]]] | None = None,
                             notices: Notices | None = None) -> None:
    """Poll `positions` (partition -> applied offset) until the token is covered, or raise
    NotYetApplied after `timeout_ms`. Raises InvalidConsistencyToken for a token that cannot
    exist: malformed, of another topic, past `partitions`, or (`log_ends`: partition -> the
    log's end, asked once the first poll falls short, alongside the wait) naming an offset
    the log has not reached. A `log_ends` that fails or is slow decides nothing. With
    `notices`, the time between polls ends early when the positions move."""
    token = ConsistencyToken.checked(raw_token, topic, partitions)
    started = time.monotonic()
    delay = 0.002
    ends: asyncio.Future | None = None
    try:
        while True:
            heard = notices.generation if notices is not None else 0
            applied = await positions()
            if token.satisfied_by(applied):
                return
            if log_ends is not None and ends is None:
                ends = asyncio.ensure_future(log_ends())
            if ends is not None and ends.done() and not ends.cancelled() and ends.exception() is None:
                unwritten = token.unwritten(ends.result())
                if unwritten:
                    p, o = unwritten[0]
                    raise InvalidConsistencyToken(
                        f"consistency_token names partition {p} offset {o}, which the log has not reached "
                        f"(it ends at {ends.result().get(p, 0)}): no write made this token")
            waited = time.monotonic() - started
            if waited * 1000 >= timeout_ms:
                raise NotYetApplied(projection, token.missing(applied), applied, int(waited * 1000))
            pause = min(delay, timeout_ms / 1000 - waited)
            await (notices.after(heard, pause) if notices is not None else asyncio.sleep(pause))
            # Without notices a poll is all there is: past 10 ms apart, a wait overslept the apply
            # by up to half its length (a graph applied at 31 ms was seen at 62).
            delay = min(delay * 2, MAX_POLL_S if notices is not None else MAX_POLL_UNNOTIFIED_S)
    finally:
        if ends is not None and not ends.done():
            ends.cancel()
        if ends is not None:
            ends.add_done_callback(lambda f: f.cancelled() or f.exception())
