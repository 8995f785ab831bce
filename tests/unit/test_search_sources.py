"""How HybridSearch gathers its sources (pure: the sources are in-memory coroutines). Postgres
down: a search whose dense or temporal source cannot reach it raises the connection error
(the API's 503 naming Postgres), even when the sparse index answered -- unless the search can
do without Postgres (the query API hydrates from Redis then) and another source answered."""

from __future__ import annotations

import asyncio

import pytest

from query_api.search import HybridSearch, SearchConfig, SourceFailed


def search() -> HybridSearch:
    return HybridSearch(pool=lambda: None, graph=None, config=SearchConfig(source_timeout_ms=200, hard_limit_s=1.0))


def answering(ranking):
    async def source():
        return ranking
    return source


def failing(exc: Exception):
    async def source():
        raise exc
    return source


async def gather(wanted: dict, postgres_optional: bool = False) -> tuple[dict, list]:
    degraded: list = []
    vector = asyncio.get_running_loop().create_future()
    vector.set_result(None)
    return await search()._gather(wanted, vector, 0.2, degraded, postgres_optional), degraded


async def test_postgres_unreachable_from_dense_raises_even_when_sparse_answered():
    with pytest.raises(ConnectionRefusedError):
        await gather({"dense": failing(ConnectionRefusedError(111, "refused")), "sparse": answering([])})


async def test_postgres_unreachable_from_temporal_raises_even_when_sparse_answered():
    with pytest.raises(ConnectionRefusedError):
        await gather({"temporal": failing(ConnectionRefusedError(111, "refused")),
                      "sparse": answering([("m1", 1.0)])})


async def test_an_unreachable_graph_is_left_out_and_named():
    rankings, degraded = await gather({"graph": failing(ConnectionRefusedError(111, "refused")),
                                       "dense": answering([("m1", 0.9)])})
    assert rankings == {"dense": [("m1", 0.9)]}
    assert [d["source"] for d in degraded] == ["graph"]


async def test_a_failing_dense_source_that_is_not_a_connection_error_degrades_the_answer():
    rankings, degraded = await gather({"dense": failing(ValueError("bad")), "sparse": answering([("m1", 1.0)])})
    assert rankings == {"sparse": [("m1", 1.0)]} and degraded == [{"source": "dense", "reason": "failed (ValueError)"}]


async def test_no_source_answering_is_source_failed():
    with pytest.raises(SourceFailed):
        await gather({"dense": failing(ValueError("bad")), "sparse": failing(RuntimeError("index gone"))})


def test_the_graph_is_read_only_when_asked_for_and_the_query_names_someone():
    from query_api.search import SOURCES, reads_graph

    assert reads_graph(SOURCES, ["Caroline"])
    assert not reads_graph(SOURCES, [])
    assert not reads_graph(("dense", "sparse"), ["Caroline"])


async def test_a_search_that_can_do_without_postgres_leaves_dense_and_temporal_out_and_names_them():
    refused = ConnectionRefusedError(111, "refused")
    rankings, degraded = await gather({"dense": failing(refused), "temporal": failing(refused),
                                       "sparse": answering([("m1", 1.0)])}, postgres_optional=True)
    assert rankings == {"sparse": [("m1", 1.0)]}
    assert [d["source"] for d in degraded] == ["dense", "temporal"]
    assert all("ConnectionRefusedError" in d["reason"] for d in degraded), degraded


async def test_without_postgres_and_without_any_other_answer_it_still_raises():
    refused = ConnectionRefusedError(111, "refused")
    with pytest.raises(ConnectionRefusedError):
        await gather({"dense": failing(refused), "sparse": answering([])}, postgres_optional=True)


class _Index:
    """The sparse index's read side, in memory: one hit for any query."""

    def available(self) -> bool:
        return True

    def search(self, user_id, words, names, fields, include_archived, window, limit):
        return [("m1", 2.5)]

    def graph_names(self, user_id, names):
        return []


def _doc(memory_id: str) -> dict:
    return {"id": memory_id, "memory": "the payments service is written in Go", "user_id": "u", "agent_id": None,
            "run_id": None, "app_id": None, "metadata": {}, "categories": [], "importance": 0.5, "state": "active",
            "created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00",
            "occurred_at": "2026-01-01T00:00:00+00:00", "version": 1, "access_count": None,
            "last_accessed_at": None, "similarity": None}


def _query(**changes):
    import dataclasses
    from datetime import datetime, timezone

    from query_api.pg_reads import Scope
    from query_api.search import Query

    query = Query("which language is payments written in", Scope("u"), 5, None, datetime.now(timezone.utc))
    return dataclasses.replace(query, **changes)


async def test_with_postgres_circuit_open_sparse_ranks_and_the_other_read_model_shows():
    import numpy as np

    asked = []

    async def from_redis(ids, scope):
        asked.append((ids, scope.user_id))
        return {i: _doc(i) for i in ids}

    searcher = HybridSearch(pool=lambda: None, graph=None, config=SearchConfig(source_timeout_ms=200, hard_limit_s=1),
                            sparse=_Index(), without_postgres=from_redis)
    vector = asyncio.get_running_loop().create_future()
    vector.set_result(np.zeros(384, dtype=np.float32))
    outcome = await searcher.run(_query(), vector, postgres_up=False)
    assert [r["id"] for r in outcome.results] == ["m1"] and outcome.results[0]["ranks"] == {"sparse": 1}
    assert outcome.postgres_down is True and asked == [(["m1"], "u")]
    assert [d["source"] for d in outcome.degraded] == ["dense"]
    assert "circuit open" in outcome.degraded[0]["reason"]


async def test_with_postgres_circuit_open_what_needs_it_is_refused():
    from domain.filters import parse
    from query_api.pg_reads import Scope
    from query_api.search import PostgresCircuitOpen

    async def from_redis(ids, scope):
        raise AssertionError("not asked")

    searcher = HybridSearch(pool=lambda: None, graph=None, config=SearchConfig(), sparse=_Index(),
                            without_postgres=from_redis)
    for query in (_query(scope=Scope("u", filters=parse({"metadata": {"team": "infra"}}))), _query(threshold=0.5),
                  _query(mmr=True), _query(include_shared=True)):
        assert not searcher.can_do_without_postgres(query)
        with pytest.raises(PostgresCircuitOpen):
            await searcher.run(query, asyncio.get_running_loop().create_future(), postgres_up=False)
    assert not HybridSearch(pool=lambda: None, graph=None, config=SearchConfig()).can_do_without_postgres(_query())
