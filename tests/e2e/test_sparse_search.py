"""The sparse source on the sparse index (Tantivy, read in the query API's process): what it
finds, the graph gate it gives, and the answer when the index is gone (Postgres full-text
answers, and `degraded` says so)."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import search_when_consistent

pytestmark = pytest.mark.e2e

NOTES = ["Marta Silva runs the payments team at Globex", "Marta likes hiking in the Alps",
         "The payments service is written in Go", "The quarterly zeppelinfest budget is 4000 euros"]


def seed(gateway, user_id) -> str:
    answer = gateway.post("/v1/memories/batch", json={"memories": [
        {"text": t, "user_id": user_id, "infer": False} for t in NOTES]})
    assert answer.status_code == 202, answer.text
    return answer.json()["consistency_token"]


def explained(gateway, user_id, token, query, **options) -> dict:
    """The answer with `explain`; a 503 not_yet_consistent (the Postgres projector still busy
    with an earlier test's thousands of events) is retried, as its message asks."""
    answer = search_when_consistent(gateway, {"query": query, "user_id": user_id, "consistency_token": token,
                                              "explain": True, "cache": False, **options}, timeout_s=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def from_index(gateway, user_id, token, query, **options) -> dict:
    """The answer once the sparse index has applied the token (the projector may trail
    Postgres by more than the grace a token gives it on a busy box)."""
    deadline = time.monotonic() + 20
    while True:
        body = explained(gateway, user_id, token, query, **options)
        if body["explain"]["sparse_from"] == "index" or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def test_the_sparse_source_reads_the_index(gateway, user_id):
    token = seed(gateway, user_id)
    body = from_index(gateway, user_id, token, "zeppelinfest budget")
    assert body["explain"]["sparse_from"] == "index"
    assert body["degraded"] == []
    top = body["results"][0]
    assert top["memory"] == NOTES[3] and top["ranks"].get("sparse") == 1


def test_a_batch_of_turns_finds_an_answer_by_the_question_before_it(gateway, user_id):
    """A batch is taken as turns: "yes, that one!" is found by the question's words through its
    context. The control: the same turns written with context_turns 0 leave it out."""
    turns = ["Nate: did you catch the Quadrantid meteor shower?", "Joanna: yes, that one! Stayed up till 3am",
             "Joanna: I adopted a turtle last week"]
    for context_turns in (0, 1, 2):  # each turn carries this many before it
        other = f"{user_id}-{context_turns}"
        answer = gateway.post("/v1/memories/batch", json={"context_turns": context_turns, "memories": [
            {"text": t, "user_id": other, "infer": False} for t in turns]})
        assert answer.status_code == 202, answer.text
        body = from_index(gateway, other, answer.json()["consistency_token"], "Quadrantid shower")
        sparse = sorted((r["ranks"]["sparse"], r["memory"]) for r in body["results"] if "sparse" in r["ranks"])
        # The turn that says it ranks first; a turn that has it only as context follows.
        assert sparse[0] == (1, turns[0]) and {m for _, m in sparse} == set(turns[:context_turns + 1]), sparse


def test_a_misspelt_name_is_found_by_the_index(gateway, user_id):
    token = seed(gateway, user_id)
    body = from_index(gateway, user_id, token, "Who works for Globexx?")
    assert body["explain"]["sparse_from"] == "index"
    by_text = {r["memory"]: r for r in body["results"]}
    assert "sparse" in by_text[NOTES[0]]["ranks"], body["results"]


def test_the_graph_runs_only_for_names_the_user_has(gateway, user_id):
    token = seed(gateway, user_id)
    named = from_index(gateway, user_id, token, "What does Marta like?")
    assert "graph" in named["explain"]["sources_run"]
    stranger = from_index(gateway, user_id, token, "What does Zebediah like?")
    assert stranger["explain"]["names"] == ["Zebediah"]
    assert "graph" not in stranger["explain"]["sources_run"]
    assert stranger["degraded"] == []


def test_filters_and_shared_searches_use_postgres(gateway, user_id):
    token = seed(gateway, user_id)
    body = explained(gateway, user_id, token, "zeppelinfest budget",
                     filters={"NOT": [{"metadata": {"draft": {"exists": True}}}]})
    assert body["explain"]["sparse_from"] == "postgres" and body["degraded"] == []
    assert body["results"][0]["memory"] == NOTES[3] and body["results"][0]["ranks"].get("sparse") == 1
    body = explained(gateway, user_id, token, "zeppelinfest budget", include_shared=True)
    assert body["explain"]["sparse_from"] == "postgres"
    assert body["results"][0]["memory"] == NOTES[3]


@pytest.mark.outage
def test_without_the_index_postgres_answers_and_degraded_says_so(gateway, settings, user_id):
    from infra import stack

    token = seed(gateway, user_id)
    from_index(gateway, user_id, token, "zeppelinfest budget")
    processes = stack.table(settings)
    projector = stack.service_specs(settings, ("projector-sparse",))
    stack.down(projector, processes)
    live = settings.sparse_dir / "live"
    away = live.with_name("live.away")
    live.rename(away)
    try:
        body = explained(gateway, user_id, token, "zeppelinfest budget")
        assert body["explain"]["sparse_from"] == "postgres"
        assert [d["source"] for d in body["degraded"]] == ["sparse"]
        assert "Postgres full-text" in body["degraded"][0]["reason"]
        assert body["results"][0]["memory"] == NOTES[3] and body["results"][0]["ranks"].get("sparse") == 1
        ready = gateway.get("/readyz")
        assert ready.status_code == 200, ready.text
    finally:
        away.rename(live)
        stack.up(projector, processes)
    body = from_index(gateway, user_id, token, "zeppelinfest budget")
    assert body["explain"]["sparse_from"] == "index" and body["degraded"] == []


@pytest.mark.outage
def test_a_stopped_sparse_projector_leaves_a_token_to_postgres(gateway, settings, user_id):
    """The index trails a write its projector has not applied: a search with that write's
    token gets its sparse hits from Postgres (complete, not degraded) at once."""
    from infra import stack

    processes = stack.table(settings)
    projector = stack.service_specs(settings, ("projector-sparse",))
    stack.down(projector, processes)
    try:
        token = seed(gateway, user_id)
        body = explained(gateway, user_id, token, "zeppelinfest budget")
        assert body["explain"]["sparse_from"] == "postgres" and body["degraded"] == []
        assert body["results"][0]["memory"] == NOTES[3] and body["results"][0]["ranks"].get("sparse") == 1
        # Postgres has the token now: the index is given one look, not a grace (it was 250 ms).
        began = time.monotonic()
        body = explained(gateway, user_id, token, "zeppelinfest budget", sources=["dense", "sparse"])
        assert time.monotonic() - began < 0.25 and body["explain"]["sparse_from"] == "postgres"
    finally:
        stack.up(projector, processes)
    body = from_index(gateway, user_id, token, "zeppelinfest budget")
    assert body["explain"]["sparse_from"] == "index" and body["degraded"] == []
