"""The order a projector may write a batch in (pure: no I/O)."""

from __future__ import annotations

from collections.abc import Sequence

from domain.events import MemoryCreated, MemoryScopeDeleted, UserErased
from projectors.applied import Applied

# Events about every memory of a user: nothing moves past them (a create after an erasure
# belongs to the user's new life and must not be purged with the old one).
_BARRIERS = (MemoryScopeDeleted, UserErased)


def hoist_creates(batch: Sequence[Applied]) -> list[tuple[list[Applied], list[Applied]]]:
    """The batch as segments of (creates, other events), each segment's creates written
    first and together (one COPY instead of a round trip per run between updates).

    The result equals applying the events in log order: a create only changes its own
    memory, and never overwrites, so it may move ahead of events about other memories.
    It may not move ahead of a scope delete or an erasure (which could cover it) or of an event about the
    same memory: there a new segment starts.
    """
    segments: list[tuple[list[Applied], list[Applied]]] = []
    creates: list[Applied] = []
    others: list[Applied] = []
    touched: set[str] = set()
    for item in batch:
        event = item.event
        if event is None:
            continue
        if isinstance(event, MemoryCreated) and event.memory_id not in touched:
            creates.append(item)
            continue
        if isinstance(event, (MemoryCreated, *_BARRIERS)) and (creates or others):
            segments.append((creates, others))
            creates, others, touched = [], [], set()
        if isinstance(event, MemoryCreated):
            creates.append(item)
            continue
        others.append(item)
        if isinstance(event, _BARRIERS):
            segments.append(([], others))  # nothing moves past it
            others = []
        elif hasattr(event, "memory_id"):
            touched.add(event.memory_id)
            touched.update(getattr(event, "source_memory_ids", ()))  # a consolidation archives these
    if creates or others:
        segments.append((creates, others))
    return segments
