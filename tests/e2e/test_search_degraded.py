"""Search with a dependency down: Neo4j stopped, Redis stopped, both. The answer still
comes, fast, from the sources that remain; what was left out is named in `degraded`."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.e2e

NOTES = ["Marta Silva runs the payments team at Globex", "Marta likes hiking in the Alps",
         "The payments service is written in Go"]


def seed(gateway, user_id):
    answer = gateway.post("/v1/memories/batch", json={"memories": [
        {"text": t, "user_id": user_id, "infer": False} for t in NOTES]})
    assert answer.status_code == 202, answer.text
    return answer.json()["consistency_token"]


def timed_search(gateway, **body):
    began = time.monotonic()
    answer = gateway.post("/v1/memories/search", json=body)
    return answer, time.monotonic() - began


def stopped(settings, names):
    from infra import stack

    processes = stack.table(settings)
    specs = stack.infra_specs(settings, names)
    stack.down(specs, processes)
    return lambda: stack.up(specs, processes)


def test_neo4j_down_leaves_out_the_graph_and_names_it(gateway, settings, user_id):
    token = seed(gateway, user_id)
    restart = stopped(settings, ("neo4j",))
    try:
        answer, seconds = timed_search(gateway, query="What does Marta like?", user_id=user_id,
                                       consistency_token=token)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert [d["source"] for d in body["degraded"]] == ["graph"]
        assert body["degraded"][0]["reason"]
        assert body["results"][0]["memory"] == "Marta likes hiking in the Alps"
        assert "graph" not in body["results"][0]["ranks"]
        assert seconds < 3, f"took {seconds:.2f}s"
        graph = gateway.get("/v1/graph", params={"user_id": user_id})
        assert graph.status_code == 503 and graph.headers.get("Retry-After")
    finally:
        restart()


@pytest.mark.outage
def test_redis_down_bypasses_the_caches_and_answers(gateway, settings, user_id):
    """Degradation mode "Redis down": searches answer without the caches (`cache` says so),
    the rate limit fails open, a write without Idempotency-Key appends; a keyed add appends
    too (its ids derive from the key and the body, so its retries, during the outage and
    after, are the same memory), a keyed update is 503 (nothing appended); /readyz names
    Redis. Once Redis is back, each acknowledged write is in the read model exactly once."""
    import asyncio

    from tests.e2e.log_reader import end_offsets
    from tests.e2e.outage import assert_exactly_once, latest_token, readyz

    before = asyncio.run(end_offsets(settings.kafka_bootstrap))
    token = seed(gateway, user_id)
    restart = stopped(settings, ("redis",))
    try:
        for _ in range(4):  # the second would be a cache hit with Redis up; later ones meet the open breaker
            answer, seconds = timed_search(gateway, query="Which language is the payments service in?",
                                           user_id=user_id, consistency_token=token)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["results"][0]["memory"] == "The payments service is written in Go"
            assert body["cache"].startswith("unavailable") or body["cache"] == "bypassed"
            assert seconds < 3, f"took {seconds:.2f}s"
        written = gateway.post("/v1/memories", json={"text": "written while Redis was down", "user_id": user_id,
                                                     "infer": False})
        assert written.status_code == 202, written.text
        keyed_body = {"text": "a keyed write while Redis was down", "user_id": user_id, "infer": False}
        keyed = [gateway.post("/v1/memories", json=keyed_body, headers={"Idempotency-Key": f"{user_id}-k"})
                 for _ in range(2)]  # the client did not hear the first answer: it retries
        assert [k.status_code for k in keyed] == [202, 202], [k.text for k in keyed]
        assert len({k.json()["results"][0]["id"] for k in keyed}) == 1
        update = gateway.patch(f"/v1/memories/{written.json()['results'][0]['id']}", params={"user_id": user_id},
                               json={"text": "an update while Redis was down"},
                               headers={"Idempotency-Key": f"{user_id}-u"})
        assert update.status_code == 503 and update.headers["Retry-After"], update.text
        assert update.json()["error"]["code"] == "idempotency_unavailable"
        for url in (settings.query_api_url, settings.command_api_url):
            ready = readyz(url)
            assert ready.status_code == 200 and ready.json()["status"] == "degraded", ready.text
            assert [d["dependency"] for d in ready.json()["degraded"]] == ["redis"]
        assert gateway.get("/readyz").json()["checks"] == {"command": "degraded: redis", "query": "degraded: redis"}
    finally:
        restart()
    again = gateway.post("/v1/memories", json=keyed_body, headers={"Idempotency-Key": f"{user_id}-k"})
    assert again.status_code == 202 and again.json()["results"][0]["id"] == keyed[0].json()["results"][0]["id"]
    assert_exactly_once(settings, gateway, before, user_id,
                        NOTES + ["written while Redis was down", "a keyed write while Redis was down"],
                        latest_token([written, again]))


def test_neo4j_and_redis_down_together(gateway, settings, user_id):
    token = seed(gateway, user_id)
    restart = stopped(settings, ("neo4j", "redis"))
    try:
        answer, seconds = timed_search(gateway, query="Who runs payments at Globex?", user_id=user_id,
                                       consistency_token=token, explain=True)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert "graph" in [d["source"] for d in body["degraded"]]
        assert body["results"][0]["memory"] == "Marta Silva runs the payments team at Globex"
        assert set(body["explain"]["sources_run"]) == {"dense", "sparse"}
        assert seconds < 3
    finally:
        restart()
