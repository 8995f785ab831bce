"""hoist_creates: writing a batch's creates together must equal applying it in log order."""

from __future__ import annotations

from domain.events import MemoryCreated, MemoryDeleted, MemoryScopeDeleted, MemoryUpdated, utcnow
from projectors.batch_order import hoist_creates
from projectors.applied import Applied


def create(memory_id: str) -> MemoryCreated:
    return MemoryCreated(user_id="u", actor="a", memory_id=memory_id, text=memory_id, embedding=(1.0,),
                         embedding_model="m", happened_at=utcnow())


def update(memory_id: str) -> MemoryUpdated:
    return MemoryUpdated(user_id="u", actor="a", memory_id=memory_id, text="new")


def shape(batch) -> list[tuple[list[str], list[str]]]:
    items = [Applied(0, n, e) for n, e in enumerate(batch)]
    return [([c.event.memory_id for c in creates], [f"{type(o.event).__name__}:{getattr(o.event, 'memory_id', '*')}"
                                                     for o in others]) for creates, others in hoist_creates(items)]


def test_creates_of_other_memories_move_ahead_of_updates_in_one_segment():
    batch = [create("a"), update("a"), create("b"), update("b"), create("c")]
    assert shape(batch) == [(["a", "b", "c"], ["MemoryUpdated:a", "MemoryUpdated:b"])]


def test_a_create_never_moves_ahead_of_an_event_about_the_same_memory():
    batch = [update("x"), create("y"), create("x")]
    assert shape(batch) == [(["y"], ["MemoryUpdated:x"]), (["x"], [])]


def test_nothing_moves_past_a_scope_delete():
    scope = MemoryScopeDeleted(user_id="u", actor="a", agent_id="bot")
    batch = [create("a"), MemoryDeleted(user_id="u", actor="a", memory_id="a"), scope, create("b")]
    assert shape(batch) == [(["a"], ["MemoryDeleted:a"]), ([], ["MemoryScopeDeleted:*"]), (["b"], [])]


def test_dead_lettered_positions_carry_no_event():
    items = [Applied(0, 0, None), Applied(0, 1, create("a"))]
    assert [([c.offset for c in cs], os) for cs, os in hoist_creates(items)] == [([1], [])]
