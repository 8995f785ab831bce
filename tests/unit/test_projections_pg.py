"""Every event type's effect on the Postgres read model, through its projection
(projectors/pg_projection.py) into the in-memory double (projectors/in_memory_pg.py): no server."""

from __future__ import annotations

import uuid

from domain.events import (ApiKeyIssued, ApiKeyRevoked, ConversationReceived, MemoryShared, MemoryUnshared,
                           UserRegistered)
from projectors.applied import Applied
from projectors.in_memory_pg import InMemoryPg
from projectors.pg_projection import HANDLERS, project_batch
from tests.unit.projection_events import (HAPPENED, T0, accessed, at, consolidated, created, deleted, erased,
                                          forgotten, new_user, positioned, restored, scope_deleted, updated)


async def projected(*events, store: InMemoryPg | None = None) -> InMemoryPg:
    store = store or InMemoryPg()
    await project_batch(store, positioned(events))
    return store


def states(store: InMemoryPg) -> dict[str, str]:
    return {memory_id: row["state"] for memory_id, row in store.memories.items()}


async def test_a_create_adds_an_active_row_with_history_once():
    user = new_user()
    memory = created(user, "uses vim", agent_id="a1", metadata={"k": 1}, categories=("tools",), importance=0.5)
    store = await projected(memory, memory)  # redelivered: nothing changes
    row = store.memories[memory.memory_id]
    assert (row["text"], row["state"], row["version"], row["agent_id"]) == ("uses vim", "active", 1, "a1")
    assert (row["created_at"], row["occurred_at"], row["metadata"], row["categories"]) == (
        T0, HAPPENED, {"k": 1}, ["tools"])
    assert [(h["event_type"], h["old_text"], h["new_text"]) for h in store.history.values()] == [
        ("MemoryCreated", None, "uses vim")]


async def test_an_update_replaces_the_fields_given_and_ignores_others_users_and_itself_again():
    user = new_user()
    memory = created(user, "uses vim", metadata={"k": 1})
    change = updated(memory, 1, text="uses neovim", importance=0.9)
    stranger = updated(memory, 2, text="hijacked")
    stranger = type(stranger)(**{**stranger.__dict__, "user_id": "someone-else"})
    store = await projected(memory, change, change, stranger)
    row = store.memories[memory.memory_id]
    assert (row["text"], row["importance"], row["metadata"], row["version"]) == ("uses neovim", 0.9, {"k": 1}, 2)
    assert row["updated_at"] == at(1)
    history = store.history[(change.event_id, memory.memory_id)]
    assert (history["old_text"], history["new_text"], history["old_metadata"]) == ("uses vim", "uses neovim", {"k": 1})


async def test_deletes_leave_tombstones_by_id_or_by_scope():
    user = new_user()
    kept, gone, music = created(user, "a"), created(user, "b"), created(user, "c", agent_id="music")
    store = await projected(kept, gone, music, deleted(gone, 1), deleted(kept, 2, user="other"),
                            scope_deleted(user, 3, agent_id="music"), updated(gone, 4, text="too late"))
    assert states(store) == {kept.memory_id: "active", gone.memory_id: "deleted", music.memory_id: "deleted"}
    assert store.memories[gone.memory_id]["text"] == "b" and store.memories[gone.memory_id]["version"] == 2
    assert sum(h["event_type"] == "MemoryScopeDeleted" for h in store.history.values()) == 1


async def test_a_scope_delete_without_fields_deletes_all_the_users_memories_only():
    user, other = new_user(), new_user()
    mine, theirs = created(user, "a"), created(other, "b")
    store = await projected(mine, theirs, scope_deleted(user, 1))
    assert states(store) == {mine.memory_id: "deleted", theirs.memory_id: "active"}


async def test_forget_and_restore_move_between_the_allowed_states_only():
    user = new_user()
    memory = created(user, "a")
    store = await projected(memory, forgotten(memory, 1))
    assert states(store)[memory.memory_id] == "forgotten"
    await projected(forgotten(memory, 2), store=store)  # forgotten already: nothing
    assert store.memories[memory.memory_id]["version"] == 2
    await projected(restored(memory, 3), store=store)
    assert states(store)[memory.memory_id] == "active"
    await projected(deleted(memory, 4), restored(memory, 5), store=store)
    assert states(store)[memory.memory_id] == "deleted"


async def test_a_new_summary_archives_its_sources_and_a_second_one_changes_nothing():
    user = new_user()
    a, b, c = created(user, "a"), created(user, "b"), created(user, "c")
    summary = consolidated([a, b, c], "a, b and c", 5)
    store = await projected(a, b, c, deleted(c, 1), forgotten(b, 2), summary)
    assert states(store) == {a.memory_id: "archived", b.memory_id: "archived", c.memory_id: "deleted",
                             summary.memory_id: "active"}
    assert store.memories[summary.memory_id]["occurred_at"] == HAPPENED
    again = type(summary)(**{**summary.__dict__, "event_id": str(uuid.uuid4())})
    await projected(restored(a, 6), again, store=store)
    assert states(store)[a.memory_id] == "active"  # not archived again by the repeated summary


async def test_accesses_count_per_event_and_keep_the_latest_time():
    user = new_user()
    a, b = created(user, "a"), created(user, "b")
    store = await projected(a, b)
    await projected(accessed(user, [a, a, b], 1), accessed(user, [a], 3), accessed("stranger", [b], 9), store=store)
    assert (store.memories[a.memory_id]["access_count"], store.memories[a.memory_id]["last_accessed_at"]) == (2, at(3))
    assert (store.memories[b.memory_id]["access_count"], store.memories[b.memory_id]["last_accessed_at"]) == (1, at(1))


async def test_accesses_are_counted_before_the_batchs_other_events():
    """As the SQL store does: one UPDATE for the batch's accesses, first (a memory created later
    in the same batch is not counted)."""
    user = new_user()
    memory = created(user, "a")
    store = await projected(memory, accessed(user, [memory], 1))
    assert store.memories[memory.memory_id]["access_count"] == 0


async def test_an_erasure_removes_every_row_of_the_user():
    user, other = new_user(), new_user()
    mine, theirs = created(user, "a"), created(other, "b")
    key = ApiKeyIssued(user_id=user, actor="t", key_id=str(uuid.uuid4()), prefix="rs_x", key_hash="h",
                       scopes=("memories:read",))
    store = await projected(UserRegistered(user_id=user, actor="t"), key, mine, theirs,
                            MemoryShared(user_id=other, actor="t", memory_id=theirs.memory_id, grantee_user_id=user),
                            erased(user, 5))
    assert set(store.memories) == {theirs.memory_id}
    assert {h["user_id"] for h in store.history.values()} == {other}
    assert not store.users and not store.api_keys and not store.shares


async def test_users_keys_and_shares():
    user, friend = new_user(), new_user()
    memory = created(user, "a")
    key_id = str(uuid.uuid4())
    issued = ApiKeyIssued(user_id=user, actor="t", key_id=key_id, prefix="rs_x", key_hash="h", scopes=("admin",))
    store = await projected(
        UserRegistered(user_id=user, actor="t", display_name="Ana"), UserRegistered(user_id=user, actor="t",
                                                                                    is_admin=True),
        issued, issued, ApiKeyRevoked(user_id=user, actor="t", key_id=key_id, reason="lost"),
        ApiKeyRevoked(user_id=user, actor="t", key_id=key_id, reason="again"), memory,
        MemoryShared(user_id=user, actor="t", memory_id=memory.memory_id, grantee_user_id=friend),
        MemoryShared(user_id=friend, actor="t", memory_id=memory.memory_id, grantee_user_id="x"))  # not the owner
    assert (store.users[user]["display_name"], store.users[user]["is_admin"]) == ("Ana", True)
    assert store.api_keys[key_id]["revoked_reason"] == "lost"
    assert list(store.shares) == [(memory.memory_id, friend)]
    await projected(MemoryUnshared(user_id=user, actor="t", memory_id=memory.memory_id, grantee_user_id=friend),
                    store=store)
    assert not store.shares


async def test_conversations_and_dead_letters_change_nothing():
    user = new_user()
    conversation = ConversationReceived(user_id=user, actor="t", conversation_id="c", messages=(), happened_at=T0)
    store = InMemoryPg()
    await project_batch(store, [Applied(0, 1, conversation), Applied(0, 2, None)])
    assert (store.memories, store.history, store.users) == ({}, {}, {})
    assert ConversationReceived not in HANDLERS
