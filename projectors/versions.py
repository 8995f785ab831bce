"""Read-model versions: what a replay needs from each read model.

A read model lives in numbered versions (Postgres: schema `rs_pg_v<n>`; Redis: key prefix
`rs:v<n>`; Neo4j: the label set `<Label>_v<n>`). One of them is live: readers read it and
the live projector writes it. A replay builds version n+1 beside it from offset 0, then
`switch` makes it live in one atomic step, only once it has applied at least everything the
live one has, so readers never see less than before. A projector that follows the live
version notices the switch on its next batch (`Relocated`), re-reads its positions from the
new version and seeks there: positions live in each version, so nothing is lost or doubled.
"""

from __future__ import annotations

from typing import Protocol

from projectors.applied import Projection, Relocated

__all__ = ["ReadModelVersions", "Relocated", "covers"]


class ReadModelVersions(Protocol):
    name: str  # the projection's name ("postgres", "redis", "neo4j")

    async def live_version(self) -> int:
        """The version readers read; creates version 1 (empty) as live when there is none."""

    async def versions(self) -> list[int]:
        """Every version that exists, live or not (a replay interrupted leaves one behind)."""

    async def create_version(self, version: int) -> None:
        """Schema/constraints of a new, empty version (idempotent: an existing one is kept)."""

    def projection(self, version: int | None = None) -> Projection:
        """A projection writing `version`; None: follow the live version (raise Relocated on a switch)."""

    async def switch(self, version: int, topic: str) -> bool:
        """Atomically make `version` live if it has applied at least what the live one has
        on every partition of `topic`; False (nothing changed) otherwise."""

    async def drop(self, version: int) -> None:
        """Delete a version that is not live, with everything in it."""


def covers(candidate: dict[int, int], live: dict[int, int]) -> bool:
    """Whether positions `candidate` are at or past `live` on every partition."""
    return all(candidate.get(p, -1) >= o for p, o in live.items())
