"""Reads as of a past moment on in-memory doubles: the moment's parsing (domain/as_of.py), the past
state rebuilt by the Postgres projection (projectors/past_state.py), the filters evaluated in memory
(domain/filter_match.py) and the use case (application/as_of.py) over a fake log of one user's events."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from application.as_of import PastReads
from application.reads import ListMemories, MemoryNotFound
from application.search import SOURCES, Query, Search
from domain import as_of, past_ranking
from domain.as_of import InvalidAsOf
from domain.consistency import InvalidConsistencyToken
from domain.filter_match import json_contains, matches
from domain.filters import parse
from projectors.past_state import PastState, memories_at
from query_api.pg_reads import Scope
from tests.unit.projection_events import T0, at, consolidated, created, deleted, new_user, updated

TOPIC = "recallstack.memory.events"
NOW = T0 + timedelta(days=1)


def vec(*head: float) -> tuple[float, ...]:
    return tuple(list(head) + [0.0] * (384 - len(head)))


def made(user: str, text: str, minutes: int, embedding: tuple[float, ...], **fields):
    return replace(created(user, text, minutes, **fields), embedding=embedding)


# --- the moment -----------------------------------------------------------------------------------


def test_a_time_is_utc_and_a_naive_one_is_taken_as_utc():
    m = as_of.parse("2024-05-01T14:00:00+02:00", TOPIC, 3, 12, NOW)
    assert m.time == datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc) and m.offset is None and m.partition == 3
    assert as_of.parse("2024-05-01T12:00:00", TOPIC, 3, 12, NOW).time == m.time
    assert as_of.parse("2024-05-01T12:00:00Z", TOPIC, 3, 12, NOW).time == m.time


def test_the_future_is_refused_beyond_the_skew_and_read_as_now_within_it():
    with pytest.raises(InvalidAsOf, match="in the future") as caught:
        as_of.parse((NOW + timedelta(minutes=5)).isoformat(), TOPIC, 0, 12, NOW)
    assert caught.value.field == "as_of"
    assert as_of.parse((NOW + timedelta(seconds=30)).isoformat(), TOPIC, 0, 12, NOW).time == NOW


@pytest.mark.parametrize("raw", ["yesterday", "2024-13-01", "", "  ", "12345", "0001-01-01T00:00+14:00",
                                 "9999-12-31T23:59:59-14:00", "2024-05-01\x00", "\ud800"])
def test_a_malformed_as_of_is_refused_naming_the_field(raw):
    with pytest.raises(InvalidAsOf, match="as_of"):
        as_of.parse(raw, TOPIC, 0, 12, NOW)


def test_a_token_names_an_offset_of_the_users_partition():
    m = as_of.parse(f"{TOPIC}/3:41", TOPIC, 3, 12, NOW)
    assert (m.offset, m.time, m.partition) == (41, None, 3)
    assert m.covers(41, NOW) and not m.covers(42, T0)


@pytest.mark.parametrize("raw, message", [
    ("other.topic/3:41", "topic"), (f"{TOPIC}/4:41", "partition 4"), (f"{TOPIC}/3:x", "as_of token"),
    (f"{TOPIC}/99:1", "partitions 0-11")])
def test_a_token_of_another_topic_or_partition_is_refused(raw, message):
    with pytest.raises(InvalidAsOf, match=message):
        as_of.parse(raw, TOPIC, 3, 12, NOW)


# --- the past state: the projection's rules, applied up to a position ------------------------------


def _history(user: str):
    a = made(user, "I live in Lisbon", 0, vec(1.0))
    b = made(user, "I like jazz", 1, vec(0.0, 1.0))
    c = made(user, "I like jazz a lot", 2, vec(0.0, 1.0))
    events = [a, b, c,
              updated(a, 3, text="I live in Porto", embedding=vec(0.9, 0.1), embedding_model="m"),
              consolidated([b, c], "I love jazz", 4),
              deleted(a, 5)]
    return [(0, offset, e) for offset, e in enumerate(events)], (a, b, c)


def test_the_state_at_position_n_is_the_state_after_n_events():
    user = new_user()
    records, (a, b, c) = _history(user)
    for n in range(len(records) + 1):
        rebuilt = asyncio.run(memories_at(records[:n]))
        state = PastState()
        for record in records[:n]:
            asyncio.run(state.apply(*record))
        assert {k: (r["text"], r["state"]) for k, r in rebuilt.items()} == \
               {k: (r["text"], r["state"]) for k, r in state.memories.items()}
    after = {n: asyncio.run(memories_at(records[:n])) for n in (3, 4, 5, 6)}
    assert after[3][a.memory_id]["text"] == "I live in Lisbon"
    assert after[4][a.memory_id]["text"] == "I live in Porto" and after[4][a.memory_id]["version"] == 2
    assert after[4][b.memory_id]["state"] == "active"
    assert after[5][b.memory_id]["state"] == after[5][c.memory_id]["state"] == "archived"
    assert after[6][a.memory_id]["state"] == "deleted"
    assert isinstance(after[6][a.memory_id]["embedding"], np.ndarray)


# --- filters in memory, as the SQL translation means them ------------------------------------------


def test_filters_evaluate_as_their_sql():
    row = {"id": "0b9c8e52-5a53-4c7b-8f1e-0d6f3c0a0a01", "agent_id": "cursor", "run_id": None, "app_id": None,
           "metadata": {"topic": "Rust lang", "n": 3, "tags": ["a", "b"], "flag": True}, "categories": ["work"],
           "importance": 0.5, "created_at": T0, "updated_at": T0, "occurred_at": T0}
    yes = [{"agent_id": "cursor"}, {"run_id": {"ne": "x"}}, {"run_id": {"exists": False}},
           {"metadata": {"topic": {"contains": "rust"}}}, {"metadata": {"n": {"gte": 3}}},
           {"metadata": {"tags": ["b"]}}, {"metadata": {"tags": {"contains": "a"}}}, {"categories": {"in": ["work"]}},
           {"created_at": {"lte": T0.isoformat()}}, {"importance": {"gt": 0.4}}, {"NOT": [{"agent_id": "other"}]},
           {"OR": [{"agent_id": "x"}, {"metadata": {"flag": True}}]}, {"run_id": {"nin": ["a"]}},
           {"memory_id": "0B9C8E52-5A53-4C7B-8F1E-0D6F3C0A0A01"}]
    no = [{"agent_id": "other"}, {"run_id": "x"}, {"run_id": {"in": ["x"]}}, {"metadata": {"n": {"gt": "2"}}},
          {"metadata": {"flag": 1}}, {"metadata": {"missing": {"lt": 5}}}, {"categories": {"nin": ["work"]}},
          {"AND": [{"agent_id": "cursor"}, {"importance": {"lt": 0.5}}]}]
    for raw in yes:
        assert matches(parse(raw), row), raw
    for raw in no:
        assert not matches(parse(raw), row), raw
    assert json_contains({"a": [1, {"b": 2}]}, {"a": [{"b": 2}]}) and not json_contains([1], [True])


# --- the use case over a fake log ------------------------------------------------------------------


@dataclass
class Read:
    events: int = 0
    last_offset: int | None = None
    next_offset: int = 0
    scanned: int = 0
    shredded: int = 0
    start: int = 0
    seconds: float = 0.0


class FakeLog:
    """One partition's records: (offset, event, key version); destroyed versions are skipped."""

    def __init__(self, records):
        self.records, self.destroyed, self.reads, self.resumed, self.closed = records, frozenset(), 0, [], False

    async def close(self):
        self.closed = True

    async def destroyed_versions(self, user_id):
        return self.destroyed

    async def read(self, user_id, moment, apply, destroyed=frozenset(), resume=None):
        self.reads += 1
        self.resumed.append(resume)
        read = Read(next_offset=len(self.records) if moment.offset is None else moment.offset + 1)
        for offset, event, version in self.records:
            if resume is not None and offset < resume:
                continue
            if moment.offset is not None and offset > moment.offset:
                break
            read.scanned += 1
            if event.user_id != user_id:
                continue
            if version in destroyed:
                read.shredded += 1
                continue
            if not moment.covers(offset, event.occurred_at):
                read.next_offset = offset
                break
            await apply(moment.partition, offset, event)
            read.events, read.last_offset = read.events + 1, offset
        return read


class FakeEmbeddings:
    async def embed(self, text):
        return np.asarray(vec(0.0, 1.0) if "music" in text else vec(1.0), dtype=np.float32), "model"


def _reads(log, now=NOW):
    return PastReads(log, PastState, FakeEmbeddings(), TOPIC, lambda user: 0, 12, clock=lambda: now)


def _search(user, text="where do I live", limit=10, **scope_fields) -> Search:
    scope = Scope.of(user, scope_fields.get("agent_id"), None, None, scope_fields.get("filters"), False)
    return Search(Query(text, scope, limit, None, NOW, SOURCES), None, {}, None)


def _story():
    """User u: A (Lisbon) and an other user's memory; then A updated to Porto, B added, A deleted."""
    user, other = new_user(), new_user()
    a = made(user, "I live in Lisbon", 0, vec(1.0), agent_id="cursor")
    b = made(user, "I play music on Sundays", 10, vec(0.0, 1.0))
    records = [(0, a, 1), (1, made(other, "I live in Rome", 1, vec(1.0)), 1),
               (2, updated(a, 5, text="I live in Porto", embedding=vec(1.0), embedding_model="m"), 1),
               (3, b, 1), (4, deleted(a, 20), 1)]
    return user, a, b, FakeLog(records)


def test_search_as_of_a_time_shows_the_old_text_and_not_what_came_later():
    user, a, b, log = _story()
    reads = _reads(log)
    found = asyncio.run(reads.search(_search(user), at(1).isoformat()))
    assert [r["memory"] for r in found.answer["results"]] == ["I live in Lisbon"]
    assert found.answer["as_of"]["events"] == 1 and found.answer["as_of"]["sources_left_out"] == {
        "graph": "the graph is not rebuilt as of a past moment"}
    found = asyncio.run(reads.search(_search(user), at(12).isoformat()))
    assert {r["memory"] for r in found.answer["results"]} == {"I live in Porto", "I play music on Sundays"}
    first = found.answer["results"][0]
    assert first["memory"] == "I live in Porto" and first["ranks"]["dense"] == 1
    found = asyncio.run(reads.search(_search(user), NOW.isoformat()))
    assert [r["memory"] for r in found.answer["results"]] == ["I play music on Sundays"]


def test_search_as_of_a_token_covers_the_events_up_to_its_offset():
    user, a, b, log = _story()
    found = asyncio.run(_reads(log).search(_search(user, "music"), f"{TOPIC}/0:2"))
    assert [r["memory"] for r in found.answer["results"]] == ["I live in Porto"]
    assert found.answer["as_of"]["position"] == f"{TOPIC}/0:2"


def test_scope_fields_and_filters_apply_as_in_the_live_search():
    user, a, b, log = _story()
    reads = _reads(log)
    found = asyncio.run(reads.search(_search(user, agent_id="cursor"), at(12).isoformat()))
    assert [r["memory"] for r in found.answer["results"]] == ["I live in Porto"]
    found = asyncio.run(reads.search(_search(user, filters=parse({"agent_id": {"exists": False}})),
                                     at(12).isoformat()))
    assert [r["memory"] for r in found.answer["results"]] == ["I play music on Sundays"]
    assert len(asyncio.run(reads.search(_search(user, limit=1), at(12).isoformat())).answer["results"]) == 1


def test_before_the_first_event_the_answer_is_empty():
    user, a, b, log = _story()
    reads = _reads(log)
    assert asyncio.run(reads.search(_search(user), (T0 - timedelta(days=1)).isoformat())).answer["results"] == []
    listed = asyncio.run(reads.list_memories(ListMemories(Scope.of(user, None, None, None, None, False)),
                                             (T0 - timedelta(days=1)).isoformat()))
    assert listed["results"] == [] and listed["total"] == 0


def test_list_and_get_as_of():
    user, a, b, log = _story()
    reads = _reads(log)
    listed = asyncio.run(reads.list_memories(ListMemories(Scope.of(user, None, None, None, None, False)),
                                             at(12).isoformat()))
    assert [r["memory"] for r in listed["results"]] == ["I play music on Sundays", "I live in Porto"]  # newest first
    assert listed["total"] == 2 and listed["as_of"]["events"] == 3
    got = asyncio.run(reads.get_memory(a.memory_id, user, at(1).isoformat()))
    assert got["memory"] == "I live in Lisbon" and got["version"] == 1
    with pytest.raises(MemoryNotFound):
        asyncio.run(reads.get_memory(a.memory_id, user, NOW.isoformat()))  # deleted by then
    with pytest.raises(MemoryNotFound):
        asyncio.run(reads.get_memory(b.memory_id, user, at(1).isoformat()))  # not yet written


def test_an_erased_user_has_no_past_and_a_cached_state_is_not_served_after_the_erasure():
    user, a, b, log = _story()
    reads = _reads(log)
    assert asyncio.run(reads.search(_search(user), f"{TOPIC}/0:2")).answer["results"]
    assert asyncio.run(reads.search(_search(user), f"{TOPIC}/0:2")).answer["as_of"]["cached"] is True
    log.destroyed = frozenset({1})  # the key store destroyed the user's key
    found = asyncio.run(reads.search(_search(user), f"{TOPIC}/0:2"))
    assert found.answer["results"] == [] and found.answer["as_of"]["cached"] is False
    assert found.answer["as_of"]["erased_events"] == 2
    with pytest.raises(MemoryNotFound):
        asyncio.run(reads.get_memory(a.memory_id, user, f"{TOPIC}/0:2"))


def test_a_recent_time_is_not_cached_a_settled_one_is():
    user, a, b, log = _story()
    reads = _reads(log)
    asyncio.run(reads.search(_search(user), NOW.isoformat()))
    asyncio.run(reads.search(_search(user), NOW.isoformat()))
    assert log.reads == 2
    asyncio.run(reads.search(_search(user), at(12).isoformat()))
    asyncio.run(reads.search(_search(user), at(12).isoformat()))
    assert log.reads == 3


def test_shared_memories_and_a_bad_token_are_refused():
    user, a, b, log = _story()
    search = _search(user)
    shared = replace(search, query=replace(search.query, include_shared=True))
    with pytest.raises(InvalidAsOf) as caught:
        asyncio.run(_reads(log).search(shared, NOW.isoformat()))
    assert caught.value.field == "include_shared"
    with pytest.raises(InvalidConsistencyToken):
        asyncio.run(_reads(log).search(replace(search, consistency_token="nope"), NOW.isoformat()))


def test_context_as_of_builds_the_block_from_the_past_state():
    user, a, b, log = _story()
    answer, _found = asyncio.run(_reads(log).context(_search(user), at(1).isoformat(), 200, "cl100k_base"))
    assert "I live in Lisbon" in answer["context"] and [m["memory"] for m in answer["memories"]] == ["I live in Lisbon"]
    assert "core memory blocks are not rebuilt" in answer["as_of"]["core_left_out"]


def test_bm25_ranks_rare_words_first():
    texts = {"a": "I like jazz", "b": "I live in Lisbon", "c": "jazz jazz in Lisbon"}
    hits = past_ranking.bm25(["jazz", "lisbon"], texts)
    assert hits[0][0] == "c" and {h[0] for h in hits} == {"a", "b", "c"}
    assert past_ranking.bm25([], {"a": "x"}) == []


def test_a_later_moment_goes_on_from_a_cached_earlier_state_and_equals_a_full_rebuild():
    user, a, b, log = _story()
    reads = _reads(log)
    asyncio.run(reads.search(_search(user), f"{TOPIC}/0:2"))
    later = asyncio.run(reads.list_memories(ListMemories(Scope.of(user, None, None, None, None, False)),
                                            f"{TOPIC}/0:4"))
    assert log.resumed == [None, 3] and later["as_of"]["extended_from"] == f"{TOPIC}/0:2"
    full = asyncio.run(_reads(FakeLog(list(log.records))).list_memories(
        ListMemories(Scope.of(user, None, None, None, None, False)), f"{TOPIC}/0:4"))
    assert [(r["id"], r["memory"], r["version"]) for r in later["results"]] == \
           [(r["id"], r["memory"], r["version"]) for r in full["results"]] == [(b.memory_id, b.text, 1)]
    assert later["as_of"]["events"] == full["as_of"]["events"] == 4
    earlier = asyncio.run(reads.get_memory(a.memory_id, user, f"{TOPIC}/0:2"))  # the earlier state is unchanged
    assert earlier["memory"] == "I live in Porto" and earlier["state"] == "active"
    asyncio.run(reads.search(_search(user), at(1).isoformat()))
    asyncio.run(reads.search(_search(user), at(12).isoformat()))
    assert log.resumed[-2:] == [None, 2]  # a time goes on from the first event the earlier time did not cover


def test_expiry_is_judged_at_the_moment():
    """A memory that expires at minute 30 shows as_of minute 20, not as_of minute 40 (unless
    include_expired), and the forget worker's MemoryExpired at minute 45 makes it forgotten."""
    from domain.events import MemoryExpired

    user = new_user()
    sprint = replace(made(user, "The sprint goal is the billing export", 0, vec(1.0)), expires_at=at(30))
    expired = MemoryExpired(user_id=user, actor="worker", memory_id=sprint.memory_id, expires_at=at(30),
                            occurred_at=at(45))
    reads = _reads(FakeLog([(0, sprint, 1), (1, expired, 1)]))
    scope = Scope.of(user, None, None, None, None, False)
    assert [r["memory"] for r in asyncio.run(reads.search(_search(user), at(20).isoformat())).answer["results"]] == [
        sprint.text]
    assert asyncio.run(reads.search(_search(user), at(40).isoformat())).answer["results"] == []
    assert asyncio.run(reads.list_memories(ListMemories(scope), at(40).isoformat()))["results"] == []
    shown = asyncio.run(reads.list_memories(ListMemories(replace(scope, include_expired=True)), at(40).isoformat()))
    assert [(r["memory"], r["expired"]) for r in shown["results"]] == [(sprint.text, True)]
    got = asyncio.run(reads.get_memory(sprint.memory_id, user, at(40).isoformat()))  # as the live get: 200, expired
    assert (got["memory"], got["expired"], got["state"]) == (sprint.text, True, "active")
    assert asyncio.run(reads.get_memory(sprint.memory_id, user, at(20).isoformat()))["expired"] is False
    later = asyncio.run(reads.list_memories(ListMemories(replace(scope, state="any", include_expired=True)),
                                            at(50).isoformat()))
    assert [r["state"] for r in later["results"]] == ["forgotten"]


def test_a_key_store_outage_is_the_logs_being_unreadable_a_503_naming_postgres():
    from adapters.key_store import KeyStoreUnavailable
    from adapters.user_log import UserLog
    from domain.as_of import LogUnreadable

    class DownStore:
        async def versions(self, user_id):
            raise KeyStoreUnavailable("the key store (Postgres) is unreachable: refused")

    class Keys:
        store = DownStore()

    with pytest.raises(LogUnreadable) as caught:
        asyncio.run(UserLog("127.0.0.1:1", TOPIC, Keys()).destroyed_versions("alice"))
    assert caught.value.dependency == "postgres"


def test_closing_the_past_reads_stops_reading_the_log():
    log = FakeLog([])
    asyncio.run(_reads(log).close())
    assert log.closed
