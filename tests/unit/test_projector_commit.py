"""A projector whose group rebalanced under a batch keeps running: Kafka's committed offsets
only inform lag tools (the read model commits its positions with the batch), so a refused
commit is logged, not fatal. The consumer here is a stand-in that refuses every commit, as
aiokafka does after a rebalance (found in CI: the Neo4j projector exited on it)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from projectors.runner import ProjectorRunner


class RefusingConsumer:
    def __init__(self):
        self.asked = 0

    async def commit(self, offsets):
        self.asked += 1
        raise CommitFailedError("the group has already rebalanced and assigned the partitions to another member")


async def test_a_commit_refused_after_a_rebalance_is_logged_and_the_projector_goes_on(caplog):
    runner = ProjectorRunner.__new__(ProjectorRunner)  # only what _commit uses
    runner.projection, runner.consumer, runner._committed = SimpleNamespace(name="neo4j"), RefusingConsumer(), {}
    with caplog.at_level(logging.WARNING, logger="projectors.runner"):
        await runner._commit({TopicPartition("recallstack.memory.events", 3): 42})
        await runner._commit({TopicPartition("recallstack.memory.events", 3): 42})
    assert runner._committed == {}  # nothing recorded as committed: the next commit tries again
    assert runner.consumer.asked == 2
    assert "offsets not committed (CommitFailedError)" in caplog.text
