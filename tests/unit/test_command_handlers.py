"""Command handlers through fakes (an in-memory log, a hash embedder, a dict of owners)."""

from datetime import datetime, timezone

import pytest

from adapters.kafka_log import LogUnavailable
from application import command_handlers as handlers
from command_api.idempotency import derived_id
from domain.commands import AddMemory, DeleteMemory, DeleteScope, ReceiveConversation, UpdateMemory
from domain.events import ConversationReceived, MemoryDeleted, MemoryScopeDeleted, MemoryUpdated
from tests.unit.fakes import FakeEmbedder, FakeMemories, FakePublisher

MEMORY = "6f1c1f7e-3a51-4f57-8d0e-8b1f2f0b4a10"


def context(publisher=None, known=None, **over):
    return handlers.CommandContext(embedder=FakeEmbedder(), publisher=publisher or FakePublisher(),
                                   memories=FakeMemories(known), correlation_id="req-1", **over)


async def test_add_appends_one_created_event_per_memory_with_its_vector_and_model():
    ctx = context()
    when = datetime(2023, 5, 8, tzinfo=timezone.utc)
    commands = [
        AddMemory(user_id="alice", text="likes tea", actor="user:alice", happened_at=when, categories=("food",)),
        AddMemory(user_id="alice", text="works at TechCorp", actor="user:alice", metadata={"k": "v"}),
    ]
    events, token = await handlers.add_memories(commands, ctx)
    assert ctx.publisher.events == events
    first, second = events
    assert (first.text, first.happened_at, first.categories) == ("likes tea", when, ("food",))
    assert second.metadata == {"k": "v"} and second.happened_at == second.occurred_at
    assert all(e.embedding_model == "fake-hash-embedder" and len(e.embedding) == 8 for e in events)
    assert {e.correlation_id for e in events} == {"req-1"}
    assert len({e.memory_id for e in events}) == 2
    assert token.offsets == ((ctx.publisher.partition_of("alice"), 1),)  # one user: one partition, in order


async def test_ids_derived_from_an_idempotency_key_are_stable():
    def ids(kind, index):
        return derived_id("alice", "key-1", kind, index)

    first, _ = await handlers.add_memories([AddMemory(user_id="alice", text="t", actor="a")], context(ids=ids))
    again, _ = await handlers.add_memories([AddMemory(user_id="alice", text="t", actor="a")], context(ids=ids))
    assert (first[0].memory_id, first[0].event_id) == (again[0].memory_id, again[0].event_id)


async def test_a_failing_log_appends_nothing_and_raises():
    class DownPublisher(FakePublisher):
        async def publish(self, events):
            raise LogUnavailable("broker down")

    ctx = context(DownPublisher())
    with pytest.raises(LogUnavailable):
        await handlers.add_memories([AddMemory(user_id="u", text="t", actor="user:u")], ctx)
    assert ctx.publisher.events == []


async def test_conversation_is_queued_as_one_event():
    ctx = context()
    event, _ = await handlers.receive_conversation(
        ReceiveConversation(user_id="u", actor="user:u", messages=(("user", "I moved to Porto"),)), ctx)
    assert isinstance(event, ConversationReceived) and ctx.publisher.events == [event]
    assert [(m.role, m.content) for m in event.messages] == [("user", "I moved to Porto")]


async def test_update_re_embeds_new_text_and_leaves_the_rest_unchanged():
    ctx = context(known={MEMORY: ("u", "active")})
    event, _ = await handlers.update_memory(UpdateMemory(user_id="u", actor="user:u", memory_id=MEMORY,
                                                         text="new text"), ctx)
    assert isinstance(event, MemoryUpdated)
    assert event.text == "new text" and len(event.embedding) == 8 and event.embedding_model == "fake-hash-embedder"
    assert event.metadata is None and event.categories is None and event.importance is None


async def test_metadata_only_update_carries_no_vector():
    ctx = context(known={MEMORY: ("u", "active")})
    event, _ = await handlers.update_memory(UpdateMemory(user_id="u", actor="user:u", memory_id=MEMORY,
                                                         metadata={"a": 1}), ctx)
    assert event.embedding is None and event.embedding_model is None and event.metadata == {"a": 1}


@pytest.mark.parametrize("known", [{}, {MEMORY: ("someone-else", "active")}, {MEMORY: ("u", "deleted")}])
async def test_update_and_delete_refuse_what_is_not_the_users_and_append_nothing(known):
    ctx = context(known=known)
    with pytest.raises(handlers.MemoryNotFound):
        await handlers.update_memory(UpdateMemory(user_id="u", actor="user:u", memory_id=MEMORY, text="x"), ctx)
    with pytest.raises(handlers.MemoryNotFound):
        await handlers.delete_memory(DeleteMemory(user_id="u", actor="user:u", memory_id=MEMORY), ctx)
    assert ctx.publisher.events == []


async def test_delete_and_scope_delete_append_one_event_each():
    ctx = context(known={MEMORY: ("u", "active")})
    deleted, _ = await handlers.delete_memory(DeleteMemory(user_id="u", actor="user:u", memory_id=MEMORY), ctx)
    scoped, _ = await handlers.delete_scope(DeleteScope(user_id="u", actor="user:u", agent_id="a"), ctx)
    assert isinstance(deleted, MemoryDeleted) and isinstance(scoped, MemoryScopeDeleted)
    assert (scoped.agent_id, scoped.run_id, scoped.app_id) == ("a", None, None)
    assert ctx.publisher.events == [deleted, scoped]


async def test_created_events_carry_the_offline_entities_and_relations():
    ctx = context()
    [event], _ = await handlers.add_memories(
        [AddMemory(user_id="u", actor="user:u", text="Alex Smith works at TechCorp and writes to alex@techcorp.io")],
        ctx)
    names = {(e.name, e.type) for e in event.entities}
    assert ("alex@techcorp.io", "email") in names and any(t == "person" for _, t in names)
    assert any(r.type == "works_at" for r in event.relations)


@pytest.mark.parametrize("state", ["forgotten", "archived"])
async def test_restore_appends_one_event_for_a_forgotten_or_archived_memory(state):
    from domain.commands import RestoreMemory
    from domain.events import MemoryRestored

    ctx = context(known={MEMORY: ("u", state)})
    event, _ = await handlers.restore_memory(RestoreMemory(user_id="u", actor="user:u", memory_id=MEMORY), ctx)
    assert isinstance(event, MemoryRestored) and event.memory_id == MEMORY
    assert ctx.publisher.events == [event]


@pytest.mark.parametrize("known, error", [({MEMORY: ("u", "active")}, handlers.NothingToRestore),
                                          ({MEMORY: ("other", "forgotten")}, handlers.MemoryNotFound),
                                          ({}, handlers.MemoryNotFound)])
async def test_restore_refuses_an_active_missing_or_foreign_memory_and_appends_nothing(known, error):
    from domain.commands import RestoreMemory

    ctx = context(known=known)
    with pytest.raises(error):
        await handlers.restore_memory(RestoreMemory(user_id="u", actor="user:u", memory_id=MEMORY), ctx)
    assert ctx.publisher.events == []


async def test_an_add_without_importance_gets_the_write_time_heuristic_and_a_given_one_is_kept():
    ctx = context()
    events, _ = await handlers.add_memories([
        AddMemory(user_id="u", actor="user:u", text="Remember that we decided to always deploy on Fridays"),
        AddMemory(user_id="u", actor="user:u", text="ok"),
        AddMemory(user_id="u", actor="user:u", text="ok", importance=0.9)], ctx)
    assert events[0].importance > 0.8 and events[1].importance == 0.05 and events[2].importance == 0.9


async def test_a_turn_is_embedded_with_its_context_and_a_turn_without_one_alone():
    ctx = context()
    when = datetime(2023, 5, 8, tzinfo=timezone.utc)
    commands = [AddMemory(user_id="alice", text=text, actor="user:alice", happened_at=when)
                for text in ("Bob: we went to Paris", "Ann: yes, that one!")]
    first, second = (await handlers.add_memories(commands, ctx))[0]
    embed = ctx.embedder.embed_one
    assert second.context == "Bob: we went to Paris"
    assert list(second.embedding) == pytest.approx(embed("Bob: we went to Paris\nAnn: yes, that one!").tolist())
    assert list(first.embedding) == pytest.approx(embed("Bob: we went to Paris").tolist())
    alone = (await handlers.add_memories(commands[1:], context()))[0][0]
    assert alone.context is None and list(alone.embedding) == pytest.approx(embed("Ann: yes, that one!").tolist())
