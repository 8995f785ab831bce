"""One user's memories as the Postgres read model held them at a past position, rebuilt in memory.

A read `as_of` a past moment (application/as_of.py) is answered from this: the user's events up
to that position, read from the log, applied through the very projection the live read model
uses (projectors/pg_projection.py) into its in-memory double (projectors/in_memory_pg.py). So a
past state follows every rule the live one does (updates, deletes, consolidation, forgetting,
erasure, and any event a later issue adds a handler for) without a second copy of them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from domain.events import Event, MemoryAccessed
from projectors.applied import Applied
from projectors.in_memory_pg import InMemoryPg
from projectors.pg_projection import project


class PastState:
    """The rows of one user's memories (id -> row, tombstones included) as events are applied in
    log order. Vectors are kept as float32 arrays: an event's vector decodes to a tuple of Python
    floats, ~9 KB at 384 dimensions, where the array takes 1.5 KB (100k memories: 150 MB)."""

    def __init__(self, memories: dict[str, dict] | None = None) -> None:
        """`memories`: an earlier state's rows (copies: this one changes them) to go on from."""
        self._model = InMemoryPg()
        self._model.memories = memories if memories is not None else {}

    @property
    def memories(self) -> dict[str, dict]:
        return self._model.memories

    async def apply(self, partition: int, offset: int, event: Event) -> None:
        # Accesses are counted in place, in order (the live projector counts a batch's first;
        # one batch of a whole past would count none before its creates).
        if type(event) is MemoryAccessed:
            await self._model.count_accesses([event])
            return
        await project(self._model, Applied(partition, offset, event))
        self._model.history.clear()  # a past read shows no history: 100k events' rows would take 100 MB
        row = self._model.memories.get(getattr(event, "memory_id", None) or "")
        if row is not None and not isinstance(row["embedding"], np.ndarray):
            row["embedding"] = np.asarray(row["embedding"], dtype=np.float32)


async def memories_at(records: Iterable[tuple[int, int, Event]]) -> dict[str, dict]:
    """Memory id -> row after applying `records` ((partition, offset, event), in log order)."""
    state = PastState()
    for partition, offset, event in records:
        await state.apply(partition, offset, event)
    return state.memories
