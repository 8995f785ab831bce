"""The query API through the gateway, all real: hybrid search (each source doing its
part), filters, explain, list/get/history/graph/context, the answer cache never serving a
stale answer, and read-your-writes under concurrent writes."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from tests.e2e.conftest import request_actor, search_when_consistent

pytestmark = pytest.mark.e2e

NOTES = [
    ("Alice Moreau works at Acme Corp on the billing service", "2024-05-02T10:00:00Z", {"team": "billing"}),
    ("The nightly build runs tools/release_build.sh on the CI box", "2024-05-20T09:00:00Z", {"team": "infra"}),
    ("Alice prefers Rust for anything performance critical", "2024-06-03T12:00:00Z", {"team": "billing"}),
    ("We moved the team offsite to Lisbon in the first week of June", "2024-06-05T08:00:00Z", {"team": "people"}),
    ("The error ERR_QUOTA_EXCEEDED_42 means the tenant hit its storage quota", "2024-06-20T15:00:00Z",
     {"team": "infra"}),
    ("My favourite coffee is a flat white with oat milk", "2024-07-01T07:30:00Z", {"team": "people"}),
]


def add_all(gateway, user_id, notes=NOTES):
    answer = gateway.post("/v1/memories/batch", json={"memories": [
        {"text": text, "user_id": user_id, "occurred_at": at, "metadata": meta, "infer": False}
        for text, at, meta in notes]})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    return [r["id"] for r in body["results"]], body["consistency_token"]


def search(gateway, **body):
    answer = search_when_consistent(gateway, body, timeout_s=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_for_graph(gateway, user_id, token):
    """The graph lags Postgres a little: wait until it applied the token (a graph read with it)."""
    deadline = time.monotonic() + 30
    while True:
        answer = gateway.get("/v1/graph", params={"user_id": user_id, "consistency_token": token})
        if answer.status_code == 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


@pytest.fixture
def seeded(gateway, user_id):
    ids, token = add_all(gateway, user_id)
    return user_id, ids, token


def test_every_source_answers_and_results_carry_their_ranks(gateway, seeded):
    user_id, ids, token = seeded
    assert wait_for_graph(gateway, user_id, token).status_code == 200
    body = search(gateway, query="What does Alice like to code in?", user_id=user_id, consistency_token=token,
                  explain=True, reference_time="2024-07-10T00:00:00Z")
    assert body["degraded"] == []
    top = body["results"][0]
    assert top["memory"].startswith("Alice prefers Rust")
    assert set(top["ranks"]) >= {"dense", "sparse", "graph"}, top["ranks"]
    assert 0 < top["score"] <= 1.5
    explain = body["explain"]
    assert "alice" in explain["keywords"] and "Alice" in explain["names"]
    assert set(explain["sources_run"]) >= {"dense", "sparse", "graph"}
    assert set(body["timings_ms"]) >= {"embed", "dense", "sparse", "graph", "fusion", "hydrate"}
    assert explain["per_result"][top["id"]]["contributions"]["dense"] > 0


def test_sparse_finds_an_exact_identifier(gateway, seeded):
    user_id, ids, token = seeded
    body = search(gateway, query="ERR_QUOTA_EXCEEDED_42", user_id=user_id, consistency_token=token, limit=3)
    assert body["results"][0]["id"] == ids[4]
    assert body["results"][0]["ranks"].get("sparse") == 1


def test_trigram_forgives_a_misspelt_name(gateway, seeded):
    user_id, ids, token = seeded
    body = search(gateway, query="release_buidl.sh", user_id=user_id, consistency_token=token, limit=3,
                  sources=["sparse"])
    assert [r["id"] for r in body["results"]][:1] == [ids[1]]


def test_a_time_in_the_query_boosts_memories_of_that_time(gateway, seeded):
    user_id, ids, token = seeded
    body = search(gateway, query="what happened in June 2024?", user_id=user_id, consistency_token=token,
                  explain=True, limit=6)
    assert body["explain"]["time_window"]["start"].startswith("2024-06-01")
    in_june = {ids[2], ids[3], ids[4]}
    assert {r["id"] for r in body["results"][:3]} == in_june
    assert all("temporal" in r["ranks"] for r in body["results"][:3])
    # As a filter, only June remains.
    filtered = search(gateway, query="what happened in June 2024?", user_id=user_id, consistency_token=token,
                      temporal="filter")
    assert {r["id"] for r in filtered["results"]} == in_june


def test_relative_time_is_resolved_against_the_reference_time(gateway, seeded):
    user_id, ids, token = seeded
    body = search(gateway, query="what did I drink yesterday?", user_id=user_id, consistency_token=token,
                  reference_time="2024-07-02T12:00:00Z", temporal="filter", explain=True)
    assert body["explain"]["time_window"]["start"].startswith("2024-07-01")
    assert [r["id"] for r in body["results"]] == [ids[5]]


def test_filters_scope_every_source(gateway, seeded):
    user_id, ids, token = seeded
    body = search(gateway, query="Alice", user_id=user_id, consistency_token=token,
                  filters={"AND": [{"metadata": {"team": "billing"}}, {"occurred_at": {"gte": "2024-06-01"}}]})
    assert [r["id"] for r in body["results"]] == [ids[2]]
    bad = gateway.post("/v1/memories/search", json={"query": "x", "user_id": user_id,
                                                     "filters": {"AND": [{"colour": "red"}]}})
    assert bad.status_code == 422
    assert bad.json()["error"]["details"]["field"] == "filters.AND[0].colour"


def test_threshold_limit_and_mmr(gateway, seeded):
    user_id, ids, token = seeded
    body = search(gateway, query="coffee with oat milk", user_id=user_id, consistency_token=token, threshold=0.5)
    assert [r["id"] for r in body["results"]] == [ids[5]]
    assert all(r["similarity"] >= 0.5 for r in body["results"])
    assert len(search(gateway, query="Alice", user_id=user_id, limit=2, mmr=True)["results"]) == 2


def test_cache_never_serves_a_stale_answer_after_update_and_delete(gateway, seeded):
    user_id, ids, token = seeded
    query = {"query": "favourite coffee", "user_id": user_id, "limit": 3}
    first = search(gateway, **query, consistency_token=token)
    assert first["results"][0]["id"] == ids[5]
    # Repeated: served from the cache once Redis and Postgres both applied the writes.
    deadline = time.monotonic() + 10
    while search(gateway, **query)["cache"] != "hit":
        assert time.monotonic() < deadline, "the answer never became cached"
        time.sleep(0.1)

    update = gateway.patch(f"/v1/memories/{ids[5]}", params={"user_id": user_id},
                           json={"text": "My favourite coffee is now a cortado"})
    assert update.status_code == 202, update.text
    after = search(gateway, **query, consistency_token=update.json()["consistency_token"])
    assert after["cache"] != "hit"
    assert after["results"][0]["memory"] == "My favourite coffee is now a cortado"
    # Without a token, never the pre-update text again once the first fresh answer came.
    for _ in range(5):
        assert search(gateway, **query)["results"][0]["memory"] == "My favourite coffee is now a cortado"

    delete = gateway.delete(f"/v1/memories/{ids[5]}", params={"user_id": user_id})
    assert delete.status_code == 202, delete.text
    gone = search(gateway, **query, consistency_token=delete.json()["consistency_token"])
    assert ids[5] not in [r["id"] for r in gone["results"]]
    for _ in range(5):
        assert ids[5] not in [r["id"] for r in search(gateway, **query)["results"]]


def test_read_your_writes_under_concurrent_writes(gateway, user_id):
    """Writers keep adding while a reader adds one fact and searches it with its token:
    the fact is always found, never a 'not found yet'."""
    stop = threading.Event()
    errors: list[str] = []

    def writer(n: int):
        i = 0
        while not stop.is_set():
            answer = gateway.post("/v1/memories", json={"text": f"background note {n}-{i} about nothing",
                                                        "user_id": f"{user_id}-bg{n}", "infer": False})
            if answer.status_code != 202:
                errors.append(answer.text)
            i += 1

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in writers:
        t.start()
    try:
        for i in range(15):
            fact = f"Fact number {i}: the locker code is {uuid.uuid4().hex[:6]}"
            token = gateway.post("/v1/memories", json={"text": fact, "user_id": user_id, "infer": False}).json()[
                "consistency_token"]
            body = search(gateway, query=f"Fact number {i} locker code", user_id=user_id, consistency_token=token)
            assert fact in [r["memory"] for r in body["results"]], (i, body)
    finally:
        stop.set()
        for t in writers:
            t.join()
    assert errors == []


def test_list_get_and_history(gateway, seeded):
    user_id, ids, token = seeded
    page = gateway.get("/v1/memories", params={"user_id": user_id, "consistency_token": token, "page_size": 4,
                                               "sort": "occurred_at", "order": "asc"}).json()
    assert page["total"] == len(NOTES) and page["has_more"] is True
    assert [r["id"] for r in page["results"]] == ids[:4]
    second = gateway.get("/v1/memories", params={"user_id": user_id, "page_size": 4, "page": 2,
                                                 "sort": "occurred_at", "order": "asc"}).json()
    assert [r["id"] for r in second["results"]] == ids[4:] and second["has_more"] is False
    infra = gateway.get("/v1/memories", params={"user_id": user_id,
                                                "filters": json.dumps({"metadata": {"team": "infra"}})}).json()
    assert {r["id"] for r in infra["results"]} == {ids[1], ids[4]}
    bad = gateway.get("/v1/memories", params={"user_id": user_id, "filters": "{not json"})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == "filters"

    one = gateway.get(f"/v1/memories/{ids[0]}", params={"user_id": user_id})
    assert one.status_code == 200 and one.json()["memory"] == NOTES[0][0]
    # Someone else's memory is "not found", exactly like a missing one.
    other = gateway.get(f"/v1/memories/{ids[0]}", params={"user_id": user_id + "-x"})
    missing = gateway.get(f"/v1/memories/{uuid.uuid4()}", params={"user_id": user_id})
    assert other.status_code == missing.status_code == 404
    assert other.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"

    update = gateway.patch(f"/v1/memories/{ids[0]}", params={"user_id": user_id},
                           json={"text": "Alice Moreau now leads the billing service", "metadata": {"team": "lead"}})
    history = gateway.get(f"/v1/memories/{ids[0]}/history",
                          params={"user_id": user_id, "consistency_token": update.json()["consistency_token"]}).json()
    events = [h["event"] for h in history["history"]]
    assert events == ["MemoryCreated", "MemoryUpdated"]
    change = history["history"][1]
    assert change["before"]["memory"] == NOTES[0][0]
    assert change["after"] == {"memory": "Alice Moreau now leads the billing service", "metadata": {"team": "lead"}}
    assert change["actor"] == request_actor(user_id) and change["event_id"] and "partition" in change["log_position"]
    assert gateway.get(f"/v1/memories/{ids[0]}/history", params={"user_id": user_id + "-x"}).status_code == 404


def test_graph_of_a_user(gateway, seeded):
    user_id, ids, token = seeded
    body = wait_for_graph(gateway, user_id, token)
    assert body.status_code == 200, body.text
    names = {e["name"] for e in body.json()["entities"]}
    assert {"Alice Moreau", "Acme Corp"} <= names
    assert gateway.get("/v1/graph", params={"user_id": user_id + "-x"}).json()["entities"] == []


def test_context_fits_the_budget_in_real_tokens(gateway, seeded):
    user_id, ids, token = seeded
    from adapters.tokenizer import token_counter

    body = gateway.post("/v1/context", json={"query": "What do I know about Alice?", "user_id": user_id,
                                              "consistency_token": token, "max_tokens": 60})
    assert body.status_code == 200, body.text
    context = body.json()
    assert context["tokens"] == token_counter("cl100k_base").count(context["context"]) <= 60
    assert context["memories"] and context["omitted"] > 0
    assert context["memories"][0]["memory"] in context["context"]
    big = gateway.post("/v1/context", json={"query": "What do I know about Alice?", "user_id": user_id,
                                             "max_tokens": 2000}).json()
    assert len(big["memories"]) == len(NOTES) and big["omitted"] == 0


def test_bad_input_names_the_field(gateway, user_id):
    cases = [
        ({"query": "", "user_id": user_id}, "query"),
        ({"query": "x", "user_id": "bad id with spaces"}, "user_id"),
        ({"query": "x", "user_id": user_id, "sources": ["telepathy"]}, "sources.0"),
        ({"query": "x", "user_id": user_id, "weights": {"dense": 99}}, "weights"),
        ({"query": "x", "user_id": user_id, "reference_time": "next tuesday"}, "reference_time"),
        ({"query": "x", "user_id": user_id, "limit": 0}, "limit"),
    ]
    for body, field in cases:
        answer = gateway.post("/v1/memories/search", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]["message"].startswith(field), (body, answer.json())


def test_reads_append_memory_accessed_in_the_background(gateway, seeded, settings):
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    from adapters.kafka_log import partition_of
    from settings import ACCESS_TOPIC
    from tests.e2e.log_reader import opened

    user_id, ids, token = seeded
    tp = TopicPartition(ACCESS_TOPIC, partition_of(user_id))

    async def read_user_accesses(start: int | None, wanted: int, timeout_s: float = 15) -> tuple[int, list]:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, isolation_level="read_committed",
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([tp])
            if start is None:
                return (await consumer.end_offsets([tp]))[tp], []
            consumer.seek(tp, start)
            found, deadline = [], time.monotonic() + timeout_s
            async with opened() as open_record:  # access events are sealed (they carry the query)
                while len(found) < wanted and time.monotonic() < deadline:
                    for records in (await consumer.getmany(tp, timeout_ms=500)).values():
                        found += [e for e in [await open_record(r) for r in records]
                                  if e is not None and e.user_id == user_id]
            return start, found
        finally:
            await consumer.stop()

    start, _ = asyncio.run(read_user_accesses(None, 0))
    found = search(gateway, query="coffee", user_id=user_id, consistency_token=token, limit=2)["results"]
    assert gateway.get(f"/v1/memories/{ids[0]}", params={"user_id": user_id}).status_code == 200
    assert gateway.get("/v1/memories", params={"user_id": user_id}).status_code == 200  # listing: no access
    _, events = asyncio.run(read_user_accesses(start, 2))
    assert [(e.event_type, e.source, list(e.memory_ids)) for e in events] == [
        ("MemoryAccessed", "search", [r["id"] for r in found]), ("MemoryAccessed", "get", [ids[0]])]
    assert events[0].query == "coffee"


def test_metrics_per_route_and_per_source(gateway, seeded, settings):
    import httpx

    user_id, ids, token = seeded
    search(gateway, query="What does Alice like?", user_id=user_id, consistency_token=token)
    assert gateway.get(f"/v1/memories/{ids[0]}", params={"user_id": user_id}).status_code == 200
    text = httpx.get(f"{settings.query_api_url}/metrics", timeout=10).text
    assert ('recallstack_http_request_seconds_count{method="POST",route="/v1/memories/search",'
            'service="query",status="200"}') in text
    # The route's template, never the raw path with its id.
    assert 'route="/v1/memories/{memory_id}"' in text and ids[0] not in text
    for source in ("dense", "sparse", "graph"):
        assert f'recallstack_search_source_seconds_count{{source="{source}"}}' in text
    assert "recallstack_query_cache_lookups_total" in text
    command = httpx.get(f"{settings.command_api_url}/metrics", timeout=10).text
    assert 'route="/v1/memories/batch",service="command",status="202"' in command
