"""The first slice, all real: gateway -> command API -> Kafka -> projector -> Postgres
-> query API, with read-your-writes through the consistency token."""

from __future__ import annotations

import os
import signal
import time

import pytest

pytestmark = pytest.mark.e2e

FACTS = [
    "User prefers dark mode in the editor and a 14pt font",
    "The deployment pipeline runs on GitHub Actions every night",
    "Alex works at TechCorp as a machine learning engineer",
    "The project stores embeddings in PostgreSQL with pgvector",
]


def add(gateway, **body):
    answer = gateway.post("/v1/memories", json=body)
    assert answer.status_code == 202, answer.text
    return answer.json()


def test_add_then_search_finds_the_memory_first_for_a_paraphrase(gateway, user_id):
    tokens = []
    for fact in FACTS:
        body = add(gateway, text=fact, user_id=user_id, metadata={"source": "e2e"})
        [result] = body["results"]
        assert result["status"] == "processing" and result["event"] == "ADD" and result["memory"] == fact
        tokens.append(body["consistency_token"])
    # The last token covers this user's partition (per-user order), so it covers every add.
    started = time.monotonic()
    answer = gateway.post("/v1/memories/search", json={
        "query": "which colour theme does the user like in their IDE?", "user_id": user_id,
        "consistency_token": tokens[-1], "limit": 3,
    })
    elapsed_ms = (time.monotonic() - started) * 1000
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert results[0]["memory"] == FACTS[0], results
    assert results[0]["ranks"]["dense"] == 1
    assert results[0]["metadata"] == {"source": "e2e"}
    assert results[0]["score"] > results[1]["score"]
    print(f"search with read-your-writes answered in {elapsed_ms:.1f} ms")


def test_single_add_then_search_round_trip(gateway, user_id):
    started = time.monotonic()
    token = add(gateway, text="My cat is called Miso and she is three years old", user_id=user_id)["consistency_token"]
    answer = gateway.post("/v1/memories/search", json={"query": "what is the name of my pet?", "user_id": user_id,
                                                        "consistency_token": token})
    elapsed_ms = (time.monotonic() - started) * 1000
    assert answer.status_code == 200
    assert answer.json()["results"][0]["memory"].startswith("My cat is called Miso")
    print(f"add-then-search (read-your-writes) took {elapsed_ms:.1f} ms")


def test_search_is_scoped_to_the_user(gateway, user_id):
    token = add(gateway, text="Secret project codename is Bluebird", user_id=user_id)["consistency_token"]
    answer = gateway.post("/v1/memories/search", json={"query": "project codename", "user_id": user_id + "-other",
                                                        "consistency_token": token})
    assert answer.status_code == 200
    assert answer.json()["results"] == []


def test_messages_become_one_memory_each(gateway, user_id):
    body = add(gateway, user_id=user_id, messages=[
        {"role": "user", "content": "I am allergic to peanuts"},
        {"role": "assistant", "content": "Noted, I will avoid peanut recipes"},
    ])
    assert len(body["results"]) == 2
    answer = gateway.post("/v1/memories/search", json={"query": "food allergy", "user_id": user_id,
                                                        "consistency_token": body["consistency_token"]})
    top = answer.json()["results"][0]
    assert top["memory"] == "I am allergic to peanuts" and top["metadata"] == {"role": "user"}


def test_malformed_consistency_token_is_400_naming_it(gateway, user_id):
    answer = gateway.post("/v1/memories/search", json={"query": "q", "user_id": user_id,
                                                        "consistency_token": "garbage"})
    assert answer.status_code == 400
    assert answer.json()["error"]["details"]["field"] == "consistency_token"


def test_token_not_reached_in_time_is_503_with_retry_after(gateway, services, user_id):
    """A write the Postgres projector has not applied (it is paused): the read waits its bound,
    then 503 naming the partition that lags."""
    from infra.stack import table

    projector = table(services).pid("projector-postgres")
    assert projector is not None
    os.kill(projector, signal.SIGSTOP)
    try:
        token = add(gateway, text="written while the projector sleeps", user_id=user_id)["consistency_token"]
        answer = gateway.post("/v1/memories/search", json={"query": "q", "user_id": user_id,
                                                            "consistency_token": token})
    finally:
        os.kill(projector, signal.SIGCONT)
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "1"
    partition, offset = token.rsplit("/", 1)[1].split(":")
    assert f"partition {partition} offset {offset}" in answer.json()["error"]["message"]


def test_token_past_the_end_of_the_log_is_400_at_once(gateway, user_id):
    """No write made it: waiting could never satisfy it (a 503 would invite retrying forever)."""
    began = time.monotonic()
    answer = gateway.post("/v1/memories/search", json={
        "query": "q", "user_id": user_id, "consistency_token": "recallstack.memory.events/0:999999999"})
    assert answer.status_code == 400 and answer.json()["error"]["details"]["field"] == "consistency_token"
    assert "partition 0 offset 999999999" in answer.json()["error"]["message"]
    assert time.monotonic() - began < 1.5


def test_health_and_readiness_through_the_gateway(gateway, services):
    assert gateway.get("/healthz").json() == {"status": "ok"}
    ready = gateway.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"command": "ok", "query": "ok"}
