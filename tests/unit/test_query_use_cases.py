"""The query use cases (application/search.py, application/reads.py) without FastAPI or
servers: in-memory fakes of their ports (a read model whose positions a test moves, a search
engine answering from what that read model applied, an answer cache, an access log)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pytest

from application.freshness import Consistency, PostgresGuard, PostgresUnavailable
from application.reads import ListMemories, MemoryNotFound, Reading
from application.search import Outcome, Query, Search, Searching, SourceFailed
from domain.circuit_breaker import CircuitBreaker
from domain.consistency import ConsistencyToken, InvalidConsistencyToken, NotYetApplied

TOPIC = "recallstack.memory.events"
NOW = datetime(2026, 5, 1, tzinfo=timezone.utc)


def token(partition: int, offset: int) -> str:
    return ConsistencyToken.of(TOPIC, [(partition, offset)]).encode()


@dataclass
class Scope:
    user_id: str
    fields: dict = field(default_factory=dict)
    include_archived: bool = False


class ReadModel:
    """A Postgres read model in memory: the memories it holds and the offsets it applied."""

    def __init__(self):
        self.applied: dict[int, int] = {0: 3}
        self.memories: list[dict] = []

    async def positions(self) -> dict[int, int]:
        return dict(self.applied)

    def apply(self, offset: int, memory: dict) -> None:
        self.memories.append(memory)
        self.applied[0] = offset


class Engine:
    def __init__(self, model: ReadModel, fails: BaseException | None = None):
        self.model, self.fails, self.calls = model, fails, []

    def can_do_without_postgres(self, query) -> bool:
        return False

    async def run(self, query, vector_task, graph_allowed=True, graph_reason=None, sparse_fresh=True,
                  postgres_up=True) -> Outcome:
        await vector_task
        self.calls.append({"graph_allowed": graph_allowed, "graph_reason": graph_reason, "sparse_fresh": sparse_fresh})
        if self.fails is not None:
            raise self.fails
        found = [m for m in self.model.memories if set(query.text.split()) & set(m["memory"].split())]
        return Outcome(found, [], {"dense": 1.0}, {}, None)


class Embeddings:
    async def embed(self, text):
        return [1.0, 0.0], "model"


class AccessLog:
    def __init__(self):
        self.recorded = []

    def record(self, user_id, memory_ids, source, query=None):
        self.recorded.append((user_id, memory_ids, source))


class Answers:
    def __init__(self, cached=None):
        self.cached, self.stored, self.seen = cached, [], []

    def request_key(self, parts):
        return repr(sorted(parts))

    def saw(self, offsets):
        self.seen += list(offsets)

    async def lookup(self, user_id, key):
        return self.cached, "slot"

    async def store(self, slot, answer, pg_applied):
        self.stored.append((slot, answer, pg_applied))
        return True


def memory(text: str, user_id: str = "alice", **extra) -> dict:
    return {"id": f"id-{text}", "memory": text, "user_id": user_id, "occurred_at": NOW.isoformat(), **extra}


def searching(model: ReadModel, engine=None, answers=None, access=None, wait_ms=500, graph=None, grace_ms=50,
              breaker=None) -> Searching:
    consistency = Consistency(TOPIC, model.positions, wait_ms, partitions=12, graph=graph, grace_ms=grace_ms)
    background = []
    use_case = Searching(engine or Engine(model), Embeddings(), consistency,
                         PostgresGuard(breaker or CircuitBreaker("postgres")), answers=answers,
                         background=background.append, access=access or AccessLog())
    use_case.stored_later = background  # what a test may await
    return use_case


def search(text: str, consistency_token: str | None = None, **options) -> Search:
    return Search(Query(text, Scope("alice"), 10, None, NOW), None, options, consistency_token)


async def test_a_search_with_a_token_waits_until_postgres_applied_it_then_answers_the_write():
    model = ReadModel()
    model.memories.append(memory("tea in the morning"))
    write = token(0, 5)  # the add's token: Postgres has applied offset 3 only

    async def projector():
        await asyncio.sleep(0.05)
        model.apply(5, memory("tea with lemon"))

    catching_up = asyncio.create_task(projector())
    found = await searching(model).search(search("tea", write))
    await catching_up
    assert [r["memory"] for r in found.answer["results"]] == ["tea in the morning", "tea with lemon"]
    assert found.answer["degraded"] == [] and found.answer["cache"] == "off"
    assert found.timings_ms["total"] >= 40  # it waited for the projector
    without = await searching(ReadModel()).search(search("tea"))  # no token: no wait
    assert without.timings_ms["total"] < 40


async def test_a_token_postgres_does_not_apply_within_the_bound_is_not_yet_applied_and_answers_503():
    from query_api.routes.errors import answered
    from adapters.http_api import ApiError

    model = ReadModel()
    with pytest.raises(NotYetApplied) as caught:
        await searching(model, wait_ms=60).search(search("tea", token(0, 9)))
    assert caught.value.projection == "postgres" and caught.value.missing == [(0, 9)]
    with pytest.raises(ApiError) as mapped:
        with answered():
            raise caught.value
    assert (mapped.value.status, mapped.value.code, mapped.value.retry_after) == (503, "not_yet_consistent", 1)
    assert mapped.value.details["missing"] == [{"partition": 0, "offset": 9}]


async def test_a_token_that_cannot_exist_is_refused_before_any_search():
    from query_api.routes.errors import answered
    from adapters.http_api import ApiError

    model = ReadModel()
    engine = Engine(model)
    for bad in ("not-a-token", token(40, 1), "other.topic/0:1"):
        with pytest.raises(ApiError) as mapped:
            with answered():
                await searching(model, engine).search(search("tea", bad))
        assert isinstance(mapped.value.__cause__, InvalidConsistencyToken)
        assert (mapped.value.status, mapped.value.details) == (400, {"field": "consistency_token"})
    assert engine.calls == []


async def test_the_graph_lagging_past_its_grace_is_left_out_of_the_search_and_named():
    model = ReadModel()
    model.apply(5, memory("Caroline went hiking"))

    async def graph_positions():
        return {0: 2}  # never catches up

    engine = Engine(model)
    found = await searching(model, engine, graph=graph_positions, grace_ms=30).search(search("what did Caroline do",
                                                                                             token(0, 5)))
    assert found.answer["results"][0]["memory"] == "Caroline went hiking"
    assert engine.calls[0]["graph_allowed"] is False
    assert engine.calls[0]["graph_reason"].startswith("Neo4j not yet consistent")


async def test_postgres_with_its_circuit_open_is_unavailable_at_once():
    breaker = CircuitBreaker("postgres", failure_threshold=1, reset_after_s=60)
    breaker.record_failure()
    engine = Engine(ReadModel())
    with pytest.raises(PostgresUnavailable):
        await searching(ReadModel(), engine, breaker=breaker).search(search("tea"))
    assert engine.calls == []


async def test_an_unreachable_postgres_during_the_search_counts_on_its_breaker():
    breaker = CircuitBreaker("postgres", failure_threshold=1, reset_after_s=60)
    with pytest.raises(PostgresUnavailable):
        await searching(ReadModel(), Engine(ReadModel(), ConnectionRefusedError()), breaker=breaker).search(
            search("tea"))
    assert breaker.state == "open"
    with pytest.raises(SourceFailed):  # no source answered: not Postgres's fault
        await searching(ReadModel(), Engine(ReadModel(), SourceFailed("dense: failed"))).search(search("tea"))


async def test_a_cached_answer_is_served_without_searching_and_a_computed_one_stored_after():
    model = ReadModel()
    model.apply(5, memory("tea"))
    cached = {"results": [memory("tea")], "degraded": []}
    engine = Engine(model)
    access = AccessLog()
    hit = await searching(model, engine, Answers(cached), access).search(search("tea", token(0, 5)))
    assert hit.answer["cache"] == "hit" and engine.calls == [] and "cache" in hit.timings_ms
    assert access.recorded == [("alice", ["id-tea"], "search")]

    answers = Answers()
    use_case = searching(model, engine, answers)
    missed = await use_case.search(search("tea"))
    assert missed.answer["cache"] == "miss" and len(engine.calls) == 1
    await asyncio.gather(*use_case.stored_later)
    assert answers.stored == [("slot", {"results": missed.answer["results"], "degraded": []}, {0: 5})]
    explained = await searching(model, engine, Answers(cached)).search(search("tea", explain=True))
    assert explained.answer["cache"] == "off" and explained.answer["explain"]["embedding_from"] == "model"


async def test_the_context_block_counts_tokens_and_records_what_it_included_as_recalled():
    model = ReadModel()
    for text in ("tea in the morning", "tea with lemon and honey every single day"):
        model.memories.append(memory(text))
    model.memories.append(memory("tea shared by bob", user_id="bob", shared={"by": "bob"}))
    access = AccessLog()
    use_case = searching(model, access=access)
    answer, _found = await use_case.context(search("tea"), max_tokens=20, encoding="cl100k_base")
    assert answer["tokens"] <= 20 and answer["max_tokens"] == 20 and answer["encoding"] == "cl100k_base"
    assert [m["memory"] for m in answer["memories"]] == ["tea in the morning", "tea shared by bob"]
    assert answer["omitted"] == 1
    assert access.recorded == [("alice", ["id-tea in the morning"], "context")]


class Reads:
    def __init__(self, own=None, shared=None, history=None):
        self.own, self.shared, self.changes = own or {}, shared or {}, history or {}

    async def list_memories(self, scope, sort, descending, limit, offset, with_vectors=False):
        rows = sorted(self.own.values(), key=lambda m: m["memory"], reverse=descending)
        return rows[offset:offset + limit], len(rows)

    async def get_memory(self, memory_id, user_id):
        return self.own.get(memory_id)

    async def get_shared_memory(self, memory_id, grantee_user_id):
        return self.shared.get(memory_id)

    async def history(self, memory_id, user_id):
        return self.changes.get(memory_id)


def reading(reads: Reads, model: ReadModel, access: AccessLog, wait_ms: int = 500) -> Reading:
    return Reading(reads, Consistency(TOPIC, model.positions, wait_ms, partitions=12),
                   PostgresGuard(CircuitBreaker("postgres")), access)


async def test_get_waits_for_the_token_records_a_recall_of_ones_own_memory_and_hides_others():
    model, access = ReadModel(), AccessLog()
    reads = Reads(shared={"m2": memory("bob's", user_id="bob")})
    use_case = reading(reads, model, access)

    async def projector():
        await asyncio.sleep(0.03)
        reads.own["m1"] = memory("mine")
        model.applied[0] = 7

    catching_up = asyncio.create_task(projector())
    assert (await use_case.get_memory("M1", "alice", token(0, 7)))["memory"] == "mine"
    await catching_up
    assert (await use_case.get_memory("m2", "alice"))["memory"] == "bob's"  # shared: no recall of bob's
    assert access.recorded == [("alice", ["id-mine"], "get")]
    with pytest.raises(MemoryNotFound, match="memory M9 not found"):
        await use_case.get_memory("M9", "alice")
    with pytest.raises(MemoryNotFound):
        await use_case.memory_history("m9", "alice")
    with pytest.raises(NotYetApplied):
        await reading(reads, model, access, wait_ms=30).memory_history("m1", "alice", token(0, 99))


async def test_list_pages_and_history_answers_the_changes():
    model, access = ReadModel(), AccessLog()
    reads = Reads(own={f"m{i}": memory(f"note {i}") for i in range(5)}, history={"m1": [{"event": "ADD"}]})
    use_case = reading(reads, model, access)
    page = await use_case.list_memories(ListMemories(Scope("alice"), page=2, page_size=2))
    assert [r["memory"] for r in page["results"]] == ["note 2", "note 1"]
    assert (page["total"], page["has_more"]) == (5, True)
    assert await use_case.memory_history("M1", "alice") == {"memory_id": "m1", "history": [{"event": "ADD"}]}
    assert access.recorded == []  # browsing is not recall
