"""The rerank stage's pure parts: the order (domain/reranking.py), reading an endpoint's answer
(adapters/reranker_http.py), and the stage over an Outcome (application/reranking.py) with
scripted rerankers standing in for the port (the HTTP adapter itself: tests/integration/
test_reranker_http.py; the whole stack: tests/e2e/test_rerank.py)."""

from __future__ import annotations

import asyncio
import math

import pytest

from adapters.reranker_http import RerankFailed, endpoint, parsed_scores, request_body
from application.reranking import NOT_CONFIGURED, Reranking, RerankNotConfigured
from application.search import Outcome
from domain.reranking import InvalidScores, checked_scores, reordered


def test_scored_items_go_first_by_score_ties_and_the_unscored_keep_the_fused_order():
    items = ["a", "b", "c", "d", "e"]
    assert reordered(items, {0: 0.1, 1: 0.9, 2: 0.5, 3: 0.5, 4: 2.0}) == ["e", "b", "c", "d", "a"]
    assert reordered(items, {3: 1.0, 1: -2.0}) == ["d", "b", "a", "c", "e"]  # an endpoint that capped top_n
    assert reordered(items, {}) == items


@pytest.mark.parametrize("pairs, problem", [
    ([(4, 1.0)], "index 4 is not one of the 3 texts"),
    ([(-1, 1.0)], "index -1 is not one of"),
    ([(True, 1.0)], "index True is not one of"),
    ([("0", 1.0)], "index '0' is not one of"),
    ([(0, 1.0), (0, 2.0)], "index 0 is scored twice"),
    ([(0, math.nan)], "the score of index 0 is not a finite number"),
    ([(0, math.inf)], "not a finite number"),
    ([(0, "high")], "not a finite number ('high')"),
    ([(0, None)], "not a finite number (None)"),
    ([(0, False)], "not a finite number"),
    ([], "no text was scored"),
])
def test_scores_that_cannot_order_the_results_are_refused(pairs, problem):
    with pytest.raises(InvalidScores, match=problem.replace("(", r"\(").replace(")", r"\)")):
        checked_scores(pairs, 3)


def test_a_long_garbage_value_is_cut_in_the_message():
    with pytest.raises(InvalidScores) as refused:
        checked_scores([(0, "x" * 5000)], 1)
    assert len(str(refused.value)) < 120


def test_both_answer_shapes_are_read():
    assert parsed_scores([{"index": 1, "score": 0.2}, {"index": 0, "score": 3}], 2) == {0: 3.0, 1: 0.2}
    assert parsed_scores({"results": [{"index": 0, "relevance_score": 0.7, "document": {"text": "x"}}],
                          "meta": {}}, 2) == {0: 0.7}
    for garbage, problem in [({"data": []}, "expected a list"), ("ok", "expected a list"), ([0.3, 0.1], "no index"),
                             ([{"score": 1}], "no index"), ({"results": [{"index": 0}]}, "not a finite number")]:
        with pytest.raises(InvalidScores, match=problem):
            parsed_scores(garbage, 2)


def test_the_request_of_each_style():
    assert endpoint("http://tei:8080/", "tei") == "http://tei:8080/rerank"
    assert endpoint("http://vllm:8000", "cohere") == "http://vllm:8000/v1/rerank"
    assert endpoint("https://api.jina.ai/v1", "cohere") == "https://api.jina.ai/v1/rerank"
    assert request_body("tei", "m", "q", ["a"]) == {"query": "q", "texts": ["a"], "truncate": True}
    assert request_body("cohere", "m", "q", ["a", "b"]) == {"model": "m", "query": "q", "documents": ["a", "b"],
                                                            "top_n": 2}
    assert "model" not in request_body("cohere", "", "q", ["a"])


# --- the stage -----------------------------------------------------------------------------------

class Scripted:
    """Stands in for the Reranker port: the scores (by text) it was given, or an exception."""
    description = {"style": "scripted"}

    def __init__(self, by_text: dict[str, float] | None = None, fails: Exception | None = None):
        self.by_text, self.fails, self.calls = by_text or {}, fails, []

    async def scores(self, query, texts):
        self.calls.append((query, list(texts)))
        if self.fails:
            raise self.fails
        return {i: self.by_text[t] for i, t in enumerate(texts) if t in self.by_text}


def outcome(*texts: str) -> Outcome:
    return Outcome([{"id": f"m{i}", "memory": t, "score": 1 - i / 10} for i, t in enumerate(texts)], [],
                   {"fusion": 0.1}, {"candidates": len(texts)}, None)


def test_the_stage_reorders_the_candidates_cuts_at_the_limit_and_keeps_the_rest_in_fused_order():
    stage = Reranking(Scripted({"a": 0.1, "b": 0.9, "c": 0.5}), candidates=3)
    done = asyncio.run(stage.applied("q", outcome("a", "b", "c", "d", "e"), limit=4))
    assert [r["memory"] for r in done.results] == ["b", "c", "a", "d"]
    assert [r.get("rerank_score") for r in done.results] == [0.9, 0.5, 0.1, None]
    assert done.results[0]["score"] == 0.9  # the fused score stays as it was (b was second)
    assert stage.reranker.calls == [("q", ["a", "b", "c"])]
    assert done.degraded == [] and "rerank" in done.timings_ms and done.timings_ms["fusion"] == 0.1
    assert done.explain["rerank"] == {"candidates": 3, "scored": 3, "style": "scripted"}


@pytest.mark.parametrize("failure, reason", [
    (RerankFailed("the rerank endpoint answered HTTP 503"), "the rerank endpoint answered HTTP 503"),
    (KeyError("secret internals"), "failed (KeyError)"),
])
def test_a_failing_reranker_keeps_the_fused_order_and_says_why(failure, reason):
    stage = Reranking(Scripted(fails=failure), candidates=10, failures=(RerankFailed,))
    done = asyncio.run(stage.applied("q", outcome("a", "b", "c"), limit=2))
    assert [r["memory"] for r in done.results] == ["a", "b"]
    assert all("rerank_score" not in r for r in done.results)
    assert done.degraded == [{"source": "rerank", "reason": f"not reranked, the fused order is kept: {reason}"}]
    assert "secret" not in str(done.degraded)


def test_without_a_reranker_rerank_is_refused_unless_the_caller_may_do_without():
    stage = Reranking(None, candidates=40)
    assert stage.wanted({"rerank": False}) is False and stage.wanted({}) is False
    with pytest.raises(RerankNotConfigured, match="RECALLSTACK_RERANK_URL"):
        stage.wanted({"rerank": True})
    assert stage.wanted({"rerank": True}, optional=True) is True
    assert stage.depth(10) == 10  # nothing to rerank: the engine is asked for what the caller asked
    done = asyncio.run(stage.applied("q", outcome("a", "b"), limit=1))
    assert [r["memory"] for r in done.results] == ["a"]
    assert done.degraded == [{"source": "rerank", "reason": NOT_CONFIGURED}]


def test_the_engine_is_asked_for_enough_candidates():
    stage = Reranking(Scripted(), candidates=40)
    assert stage.depth(10) == 40 and stage.depth(60) == 60
    assert stage.wanted({"rerank": True}) is True


def test_nothing_found_is_not_sent():
    stage = Reranking(Scripted(), candidates=40)
    done = asyncio.run(stage.applied("q", outcome(), limit=10))
    assert done.results == [] and stage.reranker.calls == [] and done.degraded == []


# --- the stage in the search use case (application/search.py), on test_query_use_cases' fakes -------

def _use_case(reranking: Reranking, answers=None):
    from tests.unit.test_query_use_cases import Engine, ReadModel, memory, searching

    model = ReadModel()
    for text in ("tea in the morning", "tea", "green tea leaves", "coffee"):
        model.memories.append(memory(text))

    class Limits(Engine):
        async def run(self, query, *args, **kwargs):
            self.calls.append({"limit": query.limit})
            return await super().run(query, *args, **kwargs)

    use_case = searching(model, engine=Limits(model), answers=answers)
    use_case.reranking = reranking
    return use_case


def _search(limit: int = 2, optional: bool = False, **options):
    from application.search import Query, Search
    from tests.unit.test_query_use_cases import NOW, Scope

    return Search(Query("tea", Scope("alice"), limit, None, NOW), None, options, rerank_optional=optional)


async def test_a_reranked_search_asks_the_engine_for_the_candidates_and_answers_in_the_rerankers_order():
    from tests.unit.test_query_use_cases import Answers

    answers = Answers()
    use_case = _use_case(Reranking(Scripted({"tea in the morning": 0.1, "tea": 0.9, "green tea leaves": 0.5}),
                                   candidates=30), answers)
    found = await use_case.search(_search(rerank=True))
    assert [r["memory"] for r in found.answer["results"]] == ["tea", "green tea leaves"]
    assert found.answer["degraded"] == [] and "rerank" in found.timings_ms
    assert {"limit": 30} in use_case.engine.calls
    await asyncio.gather(*use_case.stored_later)
    assert len(answers.stored) == 1  # a reranked answer is cached like any other...
    # ... under a key that names the reranker: another process's reranker (or none) never serves it
    keys = []
    for reranking in (Reranking(Scripted(), 30), Reranking(Scripted(), 10)):
        recorder = Answers()
        recorder.request_key = lambda parts, seen=keys: seen.append(parts) or "k"
        keyed = _use_case(reranking, recorder)
        await keyed.search(_search(rerank=True))
        await asyncio.gather(*keyed.stored_later)
    assert keys[0]["reranker"] == {"style": "scripted", "candidates": 30} and keys[0] != keys[1]


async def test_rerank_without_a_reranker_is_refused_before_any_work_or_noted_when_optional():
    from tests.unit.test_query_use_cases import Answers

    answers = Answers()
    use_case = _use_case(Reranking(None), answers)
    with pytest.raises(RerankNotConfigured):
        await use_case.search(_search(rerank=True))
    assert use_case.engine.calls == []
    found = await use_case.search(_search(rerank=True, optional=True))
    assert [r["memory"] for r in found.answer["results"]] == ["tea in the morning", "tea"]
    assert found.answer["degraded"] == [{"source": "rerank", "reason": NOT_CONFIGURED}]
    assert {"limit": 2} in use_case.engine.calls
    await asyncio.gather(*use_case.stored_later)
    assert answers.stored == []  # a degraded answer is not cached


async def test_a_failing_reranker_answers_in_fused_order_uncached():
    from tests.unit.test_query_use_cases import Answers

    answers = Answers()
    use_case = _use_case(Reranking(Scripted(fails=RerankFailed("the rerank endpoint answered HTTP 500")),
                                   failures=(RerankFailed,)), answers)
    found = await use_case.search(_search(rerank=True))
    assert [r["memory"] for r in found.answer["results"]] == ["tea in the morning", "tea"]
    assert [d["source"] for d in found.answer["degraded"]] == ["rerank"]
    await asyncio.gather(*use_case.stored_later)
    assert answers.stored == []


# --- the Python SDK (sdk/python): `rerank` reaches the body; a scripted transport stands in for the API ------

def test_the_sdk_sends_rerank_and_reads_rerank_score(monkeypatch):
    import json

    import httpx
    from recallstack import Client

    monkeypatch.delenv("RECALLSTACK_API_KEY", raising=False)
    sent = []

    def api(request: httpx.Request) -> httpx.Response:
        sent.append((request.url.path, json.loads(request.content)))
        if request.url.path == "/v1/context":
            return httpx.Response(200, json={"context": "", "tokens": 0, "memories": [], "omitted": 0})
        return httpx.Response(200, json={"results": [{"id": "8a4f0c52-4e2b-4b8e-9d8e-0d5c3e0f1a2b", "memory": "m",
                                                      "score": 0.4, "rerank_score": 7.5}], "degraded": []})

    with Client("http://recallstack.test", transport=httpx.MockTransport(api)) as client:
        found = client.search("q", user_id="alice", rerank=True)
        client.search("q", user_id="alice")
        client.get_context("q", user_id="alice", rerank=True)
    assert sent[0] == ("/v1/memories/search", {"query": "q", "user_id": "alice", "rerank": True})
    assert "rerank" not in sent[1][1]
    assert sent[2][0] == "/v1/context" and sent[2][1]["rerank"] is True
    assert found.results[0].rerank_score == 7.5


def test_closing_the_stage_lets_go_of_the_endpoints_connections():
    class Closing:
        closed = False

        async def aclose(self):
            self.closed = True

    reranker = Closing()
    asyncio.run(Reranking(reranker).close())
    assert reranker.closed
    asyncio.run(Reranking().close())  # no endpoint: nothing to close
