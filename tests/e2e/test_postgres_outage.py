"""Postgres stopped (docs/observability.md, "Degradation modes"): a search that needs nothing
else of Postgres answers from the sparse index and the graph, the memories shown from Redis,
dense and temporal named in `degraded`; other reads (a search with a filter tree, a list)
answer 503 with Retry-After naming Postgres, fast; adds by a key the command API checked in
the last 5 minutes, for a user whose data key it holds, still append (202); a user it never
sealed for cannot be written (503, nothing appended); /readyz says which. Once Postgres is
back, every acknowledged add is in the log and in the read model exactly once."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.e2e.log_reader import end_offsets
from tests.e2e.outage import assert_exactly_once, created_texts, latest_token, readyz, stopped

pytestmark = [pytest.mark.e2e, pytest.mark.outage]


def test_postgres_down_searches_degrade_other_reads_answer_503_and_adds_still_append(gateway, settings, user_id):
    before = asyncio.run(end_offsets(settings.kafka_bootstrap))
    first = gateway.post("/v1/memories", json={"text": "written before Postgres stopped", "user_id": user_id,
                                               "infer": False})
    assert first.status_code == 202, first.text  # the command API now holds the key and the user's data key
    assert gateway.post("/v1/memories/search", json={"query": "Postgres", "user_id": user_id}).status_code == 200
    # The sparse index has it before Postgres goes (its projector opens sealed events with Postgres's keys).
    deadline = time.monotonic() + 30
    while not gateway.post("/v1/memories/search", json={"query": "Postgres", "user_id": user_id, "sources": ["sparse"],
                                                        "cache": False}).json()["results"]:
        assert time.monotonic() < deadline, "the sparse index did not apply the add"
        time.sleep(0.2)
    sealed_at = time.monotonic()
    acknowledged, answers = ["written before Postgres stopped"], [first]
    with stopped(settings, "postgres"):
        for _ in range(4):  # the breaker opens after a few failures: later searches do not even try it
            began = time.monotonic()
            search = gateway.post("/v1/memories/search", json={"query": "Postgres", "user_id": user_id,
                                                              "cache": False})  # a cached answer may still be served
            assert search.status_code == 200, search.text
            assert [r["memory"] for r in search.json()["results"]] == ["written before Postgres stopped"]
            assert search.json()["results"][0]["ranks"].keys() == {"sparse"}
            assert "Postgres" in str(search.json()["degraded"]) or "Connection" in str(search.json()["degraded"])
            assert "dense" in [d["source"] for d in search.json()["degraded"]]
            assert time.monotonic() - began < 3
        filtered = gateway.post("/v1/memories/search", json={"query": "Postgres", "user_id": user_id, "cache": False,
                                                            "filters": {"metadata": {"team": "infra"}}})
        assert filtered.status_code == 503 and filtered.headers["Retry-After"].isdigit(), filtered.text
        assert "Postgres" in filtered.json()["error"]["message"]
        unknown = gateway.post("/v1/memories/search", json={"query": "zebra xylophone", "user_id": user_id,
                                                           "cache": False})
        assert unknown.status_code == 503, unknown.text  # nothing found without Postgres is not "nothing there"
        listing = gateway.get("/v1/memories", params={"user_id": user_id})
        assert listing.status_code == 503 and listing.headers["Retry-After"]
        assert listing.json()["error"]["details"]["dependency"] == "postgres"

        query_ready, command_ready = readyz(settings.query_api_url), readyz(settings.command_api_url)
        assert query_ready.status_code == 503 and query_ready.json()["dependencies"]["postgres"]["state"] == "down"
        assert command_ready.status_code == 200, command_ready.text
        assert command_ready.json()["status"] == "degraded"
        assert [d["dependency"] for d in command_ready.json()["degraded"]] == ["postgres"]
        ready = gateway.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["query"].startswith("not ready: postgres")
        assert ready.json()["checks"]["command"] == "degraded: postgres"

        # Past the key store's 5 s refresh: the cached data key still seals.
        time.sleep(max(0.0, 5.5 - (time.monotonic() - sealed_at)))
        for i in range(3):
            text = f"written while Postgres was down {i}"
            answer = gateway.post("/v1/memories", json={"text": text, "user_id": user_id, "infer": False})
            assert answer.status_code == 202, answer.text
            acknowledged.append(text)
            answers.append(answer)
        stranger = gateway.post("/v1/memories", json={"text": "a user never sealed for", "infer": False,
                                                      "user_id": f"{user_id}-new"})
        assert stranger.status_code == 503 and stranger.headers["Retry-After"], stranger.text

    assert_exactly_once(settings, gateway, before, user_id, acknowledged, latest_token(answers))
    assert not created_texts(settings, before, f"{user_id}-new")  # the refused write appended nothing
    assert readyz(settings.query_api_url).status_code == 200

