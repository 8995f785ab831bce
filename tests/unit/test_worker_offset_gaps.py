"""The consolidation and forgetting workers commit past the holes a transactional log leaves
(one commit marker after every event), at once and in linear time: faust's own bookkeeping
(its `_new_offset`, unchanged) driven the way its fetch loop drives it, with the workers'
`_add_gap`. Pure logic: no broker (the e2e worker tests run the real apps on Kafka)."""

import asyncio
import time
from collections import defaultdict

import pytest
from intervaltree import IntervalTree

from consolidation.faust_app import _BatchedFetchConsumer

TP = ("recallstack.memory.events", 0)


def _consumer(committed=None) -> _BatchedFetchConsumer:
    """The bookkeeping part of a consumer: the four fields `_add_gap` and `_new_offset` use."""
    c = object.__new__(_BatchedFetchConsumer)
    c._gap, c._acked, c._acked_index = defaultdict(IntervalTree), defaultdict(list), defaultdict(set)
    c._committed_offset = defaultdict(lambda: None)
    c._committed_offset[TP] = committed
    return c


def _read_and_ack(c: _BatchedFetchConsumer, offsets: list[int]) -> None:
    """What faust's `_drain_messages` and `ack` do for each record read, in order."""
    async def run():
        previous = None
        for offset in offsets:
            if previous is not None and offset - previous > 1:
                await c._add_gap(TP, previous + 1, offset)
            previous = offset
            if offset not in c._acked_index[TP]:
                c._acked_index[TP].add(offset)
                c._acked[TP].append(offset)
    asyncio.run(run())


def test_one_commit_passes_every_event_each_followed_by_its_transaction_marker():
    events = list(range(100, 2100, 2))  # 1,000 events; the odd offsets are commit markers
    c = _consumer(committed=100)
    _read_and_ack(c, events)
    # faust 0.15.3's own _add_gap counted each event as a hole too: this returned 103 (two events).
    assert c._new_offset(TP) == events[-1] + 1
    assert c._new_offset(TP) is None  # nothing new acked: nothing more to commit
    assert not c._gap[TP]


def test_holes_of_aborted_transactions_are_passed_and_an_unacked_event_still_stops_the_commit():
    c = _consumer(committed=0)
    _read_and_ack(c, [0, 1, 2, 10, 11, 20])  # 3-9 aborted, 12-19 a marker and aborted records
    assert c._new_offset(TP) == 21

    c = _consumer(committed=0)
    _read_and_ack(c, [0, 2, 4])
    c._acked[TP].remove(2)  # read but its processing not finished: the commit stops before it
    c._acked_index[TP].discard(2)
    assert c._new_offset(TP) == 2


def test_a_hole_before_the_known_ones_is_merged_with_them():
    c = _consumer(committed=None)
    asyncio.run(c._add_gap(TP, 10, 20))
    asyncio.run(c._add_gap(TP, 5, 15))  # out of order (a partition read again): faust's merge
    assert sorted((i.begin, i.end) for i in c._gap[TP]) == [(5, 20)]


@pytest.mark.parametrize("events", [20_000])
def test_noting_holes_is_linear_in_the_events_read(events):
    c = _consumer(committed=0)
    started = time.process_time()
    _read_and_ack(c, list(range(0, 2 * events, 2)))
    # faust's own (merge_overlaps at each hole) took 33 s of CPU for 3,000 holes on this machine.
    assert time.process_time() - started < 5
    assert c._new_offset(TP) == 2 * events - 1
