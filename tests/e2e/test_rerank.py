"""`rerank: true` through the real stack (application/reranking.py, adapters/reranker_http.py).

The cross-encoder is a CANNED RERANK ENDPOINT, a mock of the model endpoint (no cross-encoder runs
here, and no package ships one): tests/integration/test_reranker_http.py's CannedRerankServer, which
scores each text by a fixed rule (the share of its words that are words of the query). A query API
process of this module's own is pointed at it (RECALLSTACK_RERANK_URL); the session's stack has no
rerank endpoint, which is the other case tested. Memories are written through the base URL and read
with their consistency token, so both query APIs see them.
"""

from __future__ import annotations

import os
import statistics
import time

import httpx
import pytest

from tests.e2e.conftest import admin_headers
from tests.e2e.query_api_process import query_api_process
from tests.integration.test_reranker_http import CannedRerankServer, overlap

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 600
QUERY = "quokka marmalade festival"
# Fused, the first note is near the top (it has all three words); by the canned rule it comes after
# the short notes (a long text that has them in passing).
NOTES = ["At the summer festival the quokka keeper served marmalade on toast to a long line of visitors",
         "quokka photos", "marmalade recipe", "festival tickets sold out today",
         "The train to Perth was late again"]


@pytest.fixture(scope="module")
def canned():
    server = CannedRerankServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def reranking_api(services, canned):
    """A query API process with the canned rerank endpoint; stopped at the end of the module."""
    env = {"RECALLSTACK_RERANK_URL": canned.base_url, "RECALLSTACK_RERANK_STYLE": "tei",
           "RECALLSTACK_RERANK_TIMEOUT_MS": str(TIMEOUT_MS), "RECALLSTACK_RERANK_CANDIDATES": "40"}
    with query_api_process(services, env, "rerank") as url:
        with httpx.Client(base_url=url, timeout=30, headers=admin_headers()) as api:
            yield api


@pytest.fixture(scope="module")
def seeded(services):
    """(user, consistency token) of a user with NOTES (one request per note: no turn context)."""
    user = f"test-rerank-{os.getpid()}-{int(time.time())}"
    with httpx.Client(base_url=services.gateway_url, timeout=30, headers=admin_headers()) as gateway:
        token = None
        for note in NOTES:
            answer = gateway.post("/v1/memories", json={"text": note, "user_id": user, "infer": False})
            assert answer.status_code in (201, 202), answer.text
            token = answer.json()["consistency_token"]
    return user, token


def search(api, user, token, **options):
    answer = api.post("/v1/memories/search", json={"query": QUERY, "user_id": user, "consistency_token": token,
                                                   "limit": 4, "cache": False, **options})
    assert answer.status_code == 200, answer.text
    return answer.json()


def texts(body) -> list[str]:
    return [r["memory"] for r in body["results"]]


def canned_order(fused: list[str]) -> list[str]:
    return sorted(fused, key=lambda t: -overlap(QUERY, t))  # stable: ties keep the fused order


def test_rerank_orders_the_results_as_the_endpoint_scores_them(reranking_api, canned, seeded):
    user, token = seeded
    fused = search(reranking_api, user, token, explain=True)
    candidates = texts(search(reranking_api, user, token, limit=20))
    canned.requests.clear()
    reranked = search(reranking_api, user, token, rerank=True, explain=True)
    assert reranked["degraded"] == []
    assert texts(reranked) == canned_order(candidates)[:4]
    assert texts(reranked) != texts(fused), "the canned scores disagree with fusion: the order must change"
    assert [r["rerank_score"] for r in reranked["results"]] == [overlap(QUERY, t) for t in texts(reranked)]
    assert reranked["explain"]["rerank"] == {"candidates": len(candidates), "scored": len(candidates), "style": "tei"}
    assert "rerank" in reranked["timings_ms"]
    assert [r["body"]["texts"] for r in canned.requests] == [candidates]  # the fused candidates, in fused order

    context = reranking_api.post("/v1/context", json={"query": QUERY, "user_id": user, "consistency_token": token,
                                                      "rerank": True, "candidates": 3})
    assert context.status_code == 200, context.text
    assert [m["memory"] for m in context.json()["memories"]] == canned_order(candidates)[:3]

    mem0 = reranking_api.post("/v3/memories/search/", json={"query": QUERY, "filters": {"user_id": user},
                                                           "top_k": 4, "rerank": True})
    assert mem0.status_code == 200, mem0.text
    assert [r["memory"] for r in mem0.json()["results"]] == canned_order(candidates)[:4]


def test_an_endpoint_that_fails_or_is_down_degrades_the_answer_never_fails_it(reranking_api, canned, seeded):
    user, token = seeded
    fused = texts(search(reranking_api, user, token))
    try:
        for mode, reason in [("error", "answered HTTP 503"), ("garbage", "answer is not scores"),
                             ("slow", f"no answer from the rerank endpoint within {TIMEOUT_MS} ms")]:
            canned.mode = mode
            began = time.monotonic()
            body = search(reranking_api, user, token, rerank=True)
            assert time.monotonic() - began < TIMEOUT_MS / 1000 + 2, mode
            assert texts(body) == fused, mode
            assert [d["source"] for d in body["degraded"]] == ["rerank"], body["degraded"]
            assert reason in body["degraded"][0]["reason"] or "circuit open" in body["degraded"][0]["reason"], body
            assert all("rerank_score" not in r for r in body["results"])
        canned.stop()  # down: nothing listens
        for _ in range(4):  # three failures open the breaker: then it is not even tried
            body = search(reranking_api, user, token, rerank=True)
            assert texts(body) == fused and [d["source"] for d in body["degraded"]] == ["rerank"]
        assert "circuit open" in body["degraded"][0]["reason"], body["degraded"]
    finally:
        canned.mode = "ok"
        if canned.httpd.socket.fileno() == -1:
            canned.start()
    time.sleep(1.2)  # the breaker's cool-down (adapters/resilience.py RESET_AFTER_S): one trial, then closed
    body = search(reranking_api, user, token, rerank=True)
    assert body["degraded"] == [] and "rerank_score" in body["results"][0]


def test_rerank_must_be_a_boolean(gateway, seeded):
    user, _ = seeded
    for value in ("yes", 1, None, {"on": True}):
        answer = gateway.post("/v1/memories/search", json={"query": QUERY, "user_id": user, "rerank": value})
        assert answer.status_code == 422, (value, answer.text)
        details = answer.json()["error"]["details"]
        assert "rerank" in [details.get("field")] + [e["field"] for e in details.get("errors", [])], details
    mem0 = gateway.post("/v3/memories/search/", json={"query": QUERY, "filters": {"user_id": user}, "rerank": "yes"})
    assert mem0.status_code == 422 and "rerank" in mem0.text, mem0.text


def test_without_an_endpoint_rerank_is_refused_but_mem0_notes_it(gateway, seeded):
    user, token = seeded
    for path, body in [("/v1/memories/search", {}), ("/v1/context", {})]:
        answer = gateway.post(path, json={"query": QUERY, "user_id": user, "rerank": True, **body})
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["code"] == "rerank_not_configured" and "RECALLSTACK_RERANK_URL" in error["message"]
        assert error["details"] == {"field": "rerank", "setting": "RECALLSTACK_RERANK_URL"}
    plain = gateway.post("/v1/memories/search", json={"query": QUERY, "user_id": user, "consistency_token": token,
                                                      "limit": 4})
    mem0 = gateway.post("/v3/memories/search/", json={"query": QUERY, "filters": {"user_id": user}, "top_k": 4,
                                                      "rerank": True})
    assert mem0.status_code == 200, mem0.text
    assert [r["memory"] for r in mem0.json()["results"]] == texts(plain.json())
    noted = [d for d in mem0.json()["degraded"] if d["source"] == "rerank"]
    assert len(noted) == 1 and "RECALLSTACK_RERANK_URL" in noted[0]["reason"], mem0.json()["degraded"]


def test_the_cost_of_the_stage(services, reranking_api, canned, capsys):
    """Not a budget (the box is shared): the added latency with the canned endpoint (a local process
    that scores 40 texts in about a millisecond), printed for docs/benchmarks.md. 60 memories, so
    the stage sends its full 40 candidates."""
    user = f"test-rerank-cost-{os.getpid()}-{int(time.time())}"
    topics = ["quokka", "marmalade", "festival", "train", "garden", "piano"]
    notes = [f"note {i}: the {topics[i % 6]} and the {topics[(i * 5 + 1) % 6]} on day {i}" for i in range(60)]
    with httpx.Client(base_url=services.gateway_url, timeout=30, headers=admin_headers()) as gateway:
        added = gateway.post("/v1/memories/batch", json={"memories": [
            {"text": t, "user_id": user, "infer": False} for t in notes], "context_turns": 0})
        assert added.status_code == 202, added.text
    token = added.json()["consistency_token"]
    canned.mode = "ok"
    costs: dict[bool, list[float]] = {False: [], True: []}
    stage: list[float] = []
    for round_ in range(100):
        for rerank in (False, True):
            began = time.perf_counter()
            body = search(reranking_api, user, token, rerank=rerank, explain=True, limit=10,
                          query=f"{topics[round_ % 6]} and {topics[(round_ + 2) % 6]} {round_}")
            costs[rerank].append((time.perf_counter() - began) * 1000)
            assert body["degraded"] == []
            if rerank:
                assert body["explain"]["rerank"]["candidates"] == 40
                stage.append(body["timings_ms"]["rerank"])
    with capsys.disabled():
        for name, ms in [("search", costs[False]), ("search with rerank", costs[True]), ("the stage itself", stage)]:
            ms.sort()
            print(f"\n{name}: p50 {statistics.median(ms):.1f} ms, p99 {ms[int(0.99 * (len(ms) - 1))]:.1f} ms "
                  f"({len(ms)} searches, limit 10, 40 candidates reranked)")


def test_the_python_sdk_asks_for_it(services, reranking_api, seeded):
    from recallstack import Client, InvalidRequest

    user, token = seeded
    candidates = texts(search(reranking_api, user, token, limit=20))
    with Client(str(reranking_api.base_url)) as client:
        found = client.search(QUERY, user_id=user, limit=3, rerank=True, consistency_token=token)
    assert found.degraded == [] and [m.memory for m in found.results] == canned_order(candidates)[:3]
    assert [m.rerank_score for m in found.results] == [overlap(QUERY, m.memory) for m in found.results]
    with Client(services.gateway_url) as client, pytest.raises(InvalidRequest) as refused:
        client.search(QUERY, user_id=user, rerank=True)
    assert refused.value.code == "rerank_not_configured" and refused.value.details["field"] == "rerank"
