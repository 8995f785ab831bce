"""The consolidation and forgetting workers' activity table survives the gap in Kafka's
metadata after an outage: a topic that reads as 0 partitions is not known yet, so faust's
co-partitioning check waits for the next write instead of raising PartitionsMismatch (which
killed the table agent and left the stream stopped). A real mismatch still raises. Pure
logic: a real faust app and table, the consumer's metadata stubbed (the e2e Kafka-outage
test runs the real workers through a real outage)."""

import faust
import pytest
from faust.exceptions import PartitionsMismatch

from consolidation.faust_app import _OutageTolerantTable

SOURCE = "recallstack.memory.events"


class _Metadata:
    """What faust's consumer answers for a topic's partition count: its metadata snapshot."""

    def __init__(self, counts: dict[str, int]):
        self.counts = counts

    def topic_partitions(self, topic: str):
        return self.counts.get(topic)


def _table(counts: dict[str, int]) -> _OutageTolerantTable:
    app = faust.App("recallstack-test", broker="kafka://127.0.0.1:1", store="memory://", Table=_OutageTolerantTable)
    table = app.Table("activity", partitions=12)
    app.consumer = _Metadata(counts)
    return table


def test_the_app_builds_its_tables_outage_tolerant():
    assert isinstance(_table({}), _OutageTolerantTable)


@pytest.mark.parametrize("source_n, change_n", [(12, 0), (0, 12), (12, None), (None, 12)])
def test_a_topic_that_reads_as_no_partitions_is_checked_later(source_n, change_n):
    table = _table({})
    table.app.consumer.counts = {SOURCE: source_n, table.changelog_topic_name: change_n}
    table._verify_source_topic_partitions(SOURCE)  # metadata coming back: no error
    assert SOURCE not in table._verified_source_topics_for_partitions  # and checked again next time
    table.app.consumer.counts = {SOURCE: 12, table.changelog_topic_name: 6}
    with pytest.raises(PartitionsMismatch):
        table._verify_source_topic_partitions(SOURCE)


def test_matching_counts_pass_once_and_are_remembered():
    table = _table({})
    table.app.consumer.counts = {SOURCE: 12, table.changelog_topic_name: 12}
    table._verify_source_topic_partitions(SOURCE)
    assert SOURCE in table._verified_source_topics_for_partitions
