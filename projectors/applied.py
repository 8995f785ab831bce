"""What a projection is handed and what it answers, apart from the Kafka runner that drives it
(projectors/runner.py): importing a projection, a store or a double of one pulls in no Kafka client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from domain.events import Event

__all__ = ["Applied", "Projection", "Relocated"]


class Relocated(Exception):
    """The live read-model version changed under a projector that follows it (a replay
    switched readers over): the batch was not applied; re-read positions and seek."""


@dataclass(frozen=True)
class Applied:
    """One log record as a projection receives it: its position and its decoded event."""
    partition: int
    offset: int
    event: Event | None  # None: dead-lettered, only the position advances


class Projection(Protocol):
    """What the runner drives: a read model's positions and its batch apply (exactly once)."""
    name: str
    transient_errors: tuple[type[BaseException], ...]  # outages: wait and retry, never dead-letter

    async def positions(self, topic: str) -> dict[int, int]: ...

    async def apply_batch(self, topic: str, batch: Sequence[Applied]) -> None: ...
