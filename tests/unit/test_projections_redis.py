"""Every event type's effect on the Redis read model, through its projection
(projectors/redis_projection.py) into the in-memory double of its script (projectors/in_memory_redis.py)."""

from __future__ import annotations

import json
import uuid

from domain.events import ApiKeyIssued, ConversationReceived
from projectors.applied import Applied
from projectors.in_memory_redis import InMemoryRedis
from projectors.redis_projection import epoch_ms, project
from projectors.redis_store import encode
from tests.unit.projection_events import (HAPPENED, T0, accessed, at, consolidated, created, deleted, erased,
                                          forgotten, new_user, positioned, restored, scope_deleted, updated)


def projected(*events, store: InMemoryRedis | None = None, first_offset: int | None = None) -> InMemoryRedis:
    store = store or InMemoryRedis()
    start = first_offset if first_offset is not None else store.watermarks.get(0, -1) + 1
    for item in positioned(events, first_offset=start):
        project(store, item)
    return store


def states(store: InMemoryRedis) -> dict[str, str]:
    return {memory_id: doc["state"] for memory_id, doc in store.docs.items()}


def test_a_create_writes_the_document_and_the_users_sets_once():
    user = new_user()
    memory = created(user, "uses vim", agent_id="a1", metadata={"k": 1}, importance=0.5)
    store = projected(memory)
    projected(memory, store=store, first_offset=5)  # the same event again, later: a create never overwrites
    doc = store.docs[memory.memory_id]
    assert {k: v for k, v in doc.items() if not k.startswith("_")} == {
        "id": memory.memory_id, "user_id": user, "agent_id": "a1", "text": "uses vim", "metadata": '{"k":1}',
        "categories": "[]", "importance": "0.5", "created_at": T0.isoformat(), "updated_at": T0.isoformat(),
        "occurred_at": HAPPENED.isoformat(), "embedding_model": "m", "state": "active", "version": "1"}
    assert store.sets[(user, "ids")] == store.sets[(user, "recent")] == {memory.memory_id: epoch_ms(T0)}
    assert store.gen[user] == 1 and store.watermarks == {0: 5}


def test_a_record_at_or_below_the_watermark_is_skipped():
    user = new_user()
    memory = created(user, "a")
    store = projected(memory, updated(memory, 1, text="b"))
    project(store, Applied(0, 1, updated(memory, 2, text="c")))  # offset 1 again: a redelivery
    assert store.docs[memory.memory_id]["text"] == "b" and store.gen[user] == 2


def test_an_update_sets_the_fields_given_of_the_users_own_document():
    user = new_user()
    memory = created(user, "a", metadata={"k": 1})
    stranger = updated(memory, 2, text="hijacked")
    stranger = type(stranger)(**{**stranger.__dict__, "user_id": "someone-else"})
    store = projected(memory, updated(memory, 1, text="b", categories=("x",), importance=0.25), stranger)
    doc = store.docs[memory.memory_id]
    assert (doc["text"], doc["categories"], doc["importance"], doc["metadata"], doc["version"]) == (
        "b", '["x"]', "0.25", '{"k":1}', "2")
    assert doc["updated_at"] == at(1).isoformat() and store.gen[user] == 2


def test_deletes_leave_tombstones_out_of_every_set():
    user = new_user()
    kept, gone, music = created(user, "a"), created(user, "b", 1), created(user, "c", 2, agent_id="music")
    store = projected(kept, gone, music, forgotten(music, 3), deleted(gone, 4),
                      scope_deleted(user, 5, agent_id="music"), updated(gone, 6, text="too late"))
    assert states(store) == {kept.memory_id: "active", gone.memory_id: "deleted", music.memory_id: "deleted"}
    assert store.docs[gone.memory_id]["text"] == "b"
    assert list(store.sets[(user, "ids")]) == list(store.sets[(user, "recent")]) == [kept.memory_id]
    assert store.sets[(user, "inactive")] == {}


def test_a_scope_delete_spares_memories_created_after_it():
    user = new_user()
    before, after = created(user, "a"), created(user, "b", 2)
    store = projected(before, scope_deleted(user, 1), after)
    assert states(store) == {before.memory_id: "deleted", after.memory_id: "active"}


def test_forget_and_restore_move_a_memory_through_inactive_with_its_score():
    user = new_user()
    memory = created(user, "a")
    store = projected(memory, forgotten(memory, 1))
    assert states(store)[memory.memory_id] == "forgotten"
    assert store.sets[(user, "inactive")] == {memory.memory_id: epoch_ms(T0)} and not store.sets[(user, "ids")]
    projected(restored(memory, 2), store=store)
    assert states(store)[memory.memory_id] == "active" and not store.sets[(user, "inactive")]
    assert store.sets[(user, "recent")] == {memory.memory_id: epoch_ms(T0)}
    projected(restored(memory, 3), store=store)  # active already: nothing, not even the generation
    assert store.gen[user] == 3 and store.docs[memory.memory_id]["version"] == "3"


def test_a_new_summary_archives_its_sources_and_a_second_one_changes_nothing():
    user = new_user()
    a, b, c = created(user, "a"), created(user, "b", 1), created(user, "c", 2)
    summary = consolidated([a, b, c], "a, b and c", 5)
    store = projected(a, b, c, deleted(c, 3), forgotten(b, 4), summary)
    assert states(store) == {a.memory_id: "archived", b.memory_id: "archived", c.memory_id: "deleted",
                             summary.memory_id: "active"}
    assert set(store.sets[(user, "inactive")]) == {a.memory_id, b.memory_id}
    again = type(summary)(**{**summary.__dict__, "event_id": str(uuid.uuid4())})
    projected(restored(a, 6), again, store=store)
    assert states(store)[a.memory_id] == "active"


def test_the_recent_set_keeps_the_newest_and_is_refilled_after_a_delete():
    user = new_user()
    memories = [created(user, str(n), n) for n in range(4)]
    store = InMemoryRedis(limit=2)
    projected(*memories, store=store)
    assert set(store.sets[(user, "recent")]) == {memories[3].memory_id, memories[2].memory_id}
    projected(deleted(memories[3], 9), store=store)
    assert set(store.sets[(user, "recent")]) == {memories[2].memory_id, memories[1].memory_id}


def test_an_erasure_removes_the_users_documents_tombstones_and_sets():
    user, other = new_user(), new_user()
    mine, gone, theirs = created(user, "a"), created(user, "b"), created(other, "c")
    store = projected(mine, gone, theirs, deleted(gone, 1), erased(user, 2))
    assert set(store.docs) == {theirs.memory_id}
    assert not [key for key in store.sets if key[0] == user] and user not in store.all
    assert store.gen[user] == 4


def test_other_events_only_advance_the_position():
    user = new_user()
    memory = created(user, "a")
    others = [accessed(user, [memory], 1), ConversationReceived(user_id=user, actor="t", conversation_id="c",
                                                                messages=(), happened_at=T0),
              ApiKeyIssued(user_id=user, actor="t", key_id=str(uuid.uuid4()), prefix="p", key_hash="h", scopes=())]
    store = projected(memory, *others)
    project(store, Applied(0, 9, None))
    assert store.gen[user] == 1 and store.watermarks == {0: 9}
    assert encode(Applied(0, 9, None)) == {"p": "0", "o": "9"}


def test_the_script_items_carry_the_same_writes():
    user = new_user()
    memory = created(user, "a", importance=0.5)
    item = encode(Applied(2, 7, memory))
    assert (item["t"], item["p"], item["o"], item["user_id"], item["eid"]) == ("c", "2", "7", user, memory.event_id)
    assert item["doc"]["importance"] == "0.5" and item["score"] == str(epoch_ms(T0))
    assert json.loads(item["doc"]["categories"]) == []
    assert encode(Applied(0, 1, scope_deleted(user, 1, run_id="r")))["scope"] == {"run_id": "r"}
