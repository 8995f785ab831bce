from datetime import datetime, timezone

import pytest

from adapters.kafka_log import LogUnavailable
from command_api import handlers
from domain.commands import AddMemory
from tests.unit.fakes import FakeEmbedder, FakePublisher


async def test_add_appends_one_created_event_per_memory_with_its_vector_and_model():
    publisher, embedder = FakePublisher(), FakeEmbedder()
    when = datetime(2023, 5, 8, tzinfo=timezone.utc)
    commands = [
        AddMemory(user_id="alice", text="likes tea", actor="user:alice", happened_at=when, categories=("food",)),
        AddMemory(user_id="alice", text="works at TechCorp", actor="user:alice", metadata={"k": "v"}),
    ]
    events, token = await handlers.add_memories(commands, embedder, publisher, correlation_id="req-1")
    assert publisher.events == events
    first, second = events
    assert (first.text, first.happened_at, first.categories) == ("likes tea", when, ("food",))
    assert second.metadata == {"k": "v"} and second.happened_at == second.occurred_at
    assert all(e.embedding_model == "fake-hash-embedder" and len(e.embedding) == 8 for e in events)
    assert {e.correlation_id for e in events} == {"req-1"}
    assert len({e.memory_id for e in events}) == 2
    p = publisher.partition_of("alice")
    assert token.offsets == ((p, 1),)  # both adds of one user land in one partition, in order


class DownPublisher(FakePublisher):
    async def publish(self, events):
        raise LogUnavailable("broker down")


async def test_a_failing_log_appends_nothing_and_raises():
    publisher = DownPublisher()
    with pytest.raises(LogUnavailable):
        await handlers.add_memories([AddMemory(user_id="u", text="t", actor="user:u")], FakeEmbedder(), publisher)
    assert publisher.events == []
