"""Consistency tokens: where in the log a write landed, so a read can wait for it.

Format: ``<topic>/<partition>:<offset>[,<partition>:<offset>...]`` — readable in logs,
opaque to clients. A token is satisfied once a read model has applied, in every
partition named, an offset at least as high.
"""

from __future__ import annotations

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
