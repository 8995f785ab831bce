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
