"""The command path's publisher against the real Kafka: appends that arrive together share a
transaction (group commit), and an event that cannot be encoded (a bug) fails only its own
append, before it joins the group, instead of aborting everyone's transaction."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import pytest

from adapters.kafka_log import EventPublisher
from domain.events import MemoryAccessed

pytestmark = pytest.mark.integration


def accessed(user_id: str, memory_id: str) -> MemoryAccessed:
    return MemoryAccessed(user_id=user_id, actor=f"user:{user_id}", occurred_at=datetime.now(timezone.utc),
                          memory_ids=(memory_id,), source="search")


async def test_an_unencodable_event_fails_its_own_append_and_not_the_ones_beside_it(settings, scratch_topic):
    topic = scratch_topic
    publisher = EventPublisher(settings.kafka_bootstrap, topic=topic, timeout_s=10,
                               transactional_id=f"test-publisher-{uuid.uuid4().hex[:8]}")
    try:
        user = f"pub-{uuid.uuid4().hex[:8]}"
        good = [accessed(user, str(uuid.uuid4())) for _ in range(3)]
        # Queued together, as concurrent requests are: the old writer put them in one transaction.
        answers = await asyncio.gather(publisher.publish([good[0]]), publisher.publish([accessed(user, "not-a-uuid")]),
                                       publisher.publish(good[1:]), return_exceptions=True)
        assert isinstance(answers[1], ValueError) and "must be a UUID" in str(answers[1])
        first, third = answers[0], answers[2]
        [(_, offset_a)], [(_, offset_c)] = first.offsets, third.offsets
        assert offset_c == offset_a + 2  # both stored, in one transaction, in order
    finally:
        await publisher.stop()
