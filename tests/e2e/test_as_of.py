"""Reads as of a past moment, end to end through REST (docs/api.md, "As of a past moment"): a memory
is added (its token t1 and the time noted), then updated, another added, a third added and deleted;
search, list, get and context `as_of` t1 (the token, or the time) show the old state (the old text,
nothing added later); `as_of` now equals the live answer; bad `as_of` values are 422 naming the
field; after `recallstack users erase` the user has no past either."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest

from adapters.kafka_log import partition_of
from settings import EVENTS_PARTITIONS, EVENTS_TOPIC
from tests.e2e.test_cli_json import recallstack

pytestmark = pytest.mark.e2e


def _accepted(answer) -> dict:
    assert answer.status_code == 202, answer.text
    return answer.json()


def _search(gateway, user_id: str, query: str, **extra) -> dict:
    answer = gateway.post("/v1/memories/search", json={"query": query, "user_id": user_id, "limit": 20, **extra})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _list(gateway, user_id: str, **params) -> dict:
    answer = gateway.get("/v1/memories", params={"user_id": user_id, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _refused(answer, field: str) -> None:
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["details"]["field"] == field, answer.text


def test_as_of_shows_the_past_and_now_the_present_and_an_erased_user_has_none(gateway, settings, user_id):
    added = _accepted(gateway.post("/v1/memories", json={"text": "Our deploy target is Heroku", "user_id": user_id,
                                                         "infer": False}))
    a, t1 = added["results"][0]["id"], added["consistency_token"]
    time.sleep(0.05)
    at_t1 = datetime.now(timezone.utc).isoformat()
    time.sleep(1.0)
    _accepted(gateway.patch(f"/v1/memories/{a}", params={"user_id": user_id},
                            json={"text": "Our deploy target is Fly.io"}))
    b = _accepted(gateway.post("/v1/memories", json={"text": "The staging deploy uses Postgres 16",
                                                     "user_id": user_id, "infer": False}))["results"][0]["id"]
    added_c = _accepted(gateway.post("/v1/memories", json={"text": "A deploy freeze holds until Friday",
                                                           "user_id": user_id, "infer": False}))
    c = added_c["results"][0]["id"]
    seen = gateway.get(f"/v1/memories/{c}", params={"user_id": user_id,  # a delete needs it in the read model
                                                   "consistency_token": added_c["consistency_token"]})
    assert seen.status_code == 200, seen.text
    last = _accepted(gateway.delete(f"/v1/memories/{c}", params={"user_id": user_id}))["consistency_token"]
    live = _search(gateway, user_id, "deploy target", consistency_token=last)
    assert {r["id"] for r in live["results"]} == {a, b}

    for moment in (t1, at_t1):  # the token and the time name the same past
        past = _search(gateway, user_id, "deploy target", as_of=moment)
        assert [(r["id"], r["memory"]) for r in past["results"]] == [(a, "Our deploy target is Heroku")], past
        assert past["as_of"]["sources_left_out"] == {"graph": "the graph is not rebuilt as of a past moment"}
        listed = _list(gateway, user_id, as_of=moment)
        assert [(r["id"], r["memory"], r["version"]) for r in listed["results"]] == [
            (a, "Our deploy target is Heroku", 1)] and listed["total"] == 1
        got = gateway.get(f"/v1/memories/{a}", params={"user_id": user_id, "as_of": moment})
        assert got.status_code == 200 and got.json()["memory"] == "Our deploy target is Heroku", got.text
        assert gateway.get(f"/v1/memories/{b}", params={"user_id": user_id, "as_of": moment}).status_code == 404
        context = gateway.post("/v1/context", json={"query": "where do we deploy", "user_id": user_id, "as_of": moment})
        assert context.status_code == 200, context.text
        assert "Heroku" in context.json()["context"] and "Fly.io" not in context.json()["context"]

    # Now: the same memories, texts and versions as the live read models (the deleted one absent).
    now = datetime.now(timezone.utc).isoformat()
    live_list = _list(gateway, user_id, consistency_token=last)
    past_list = _list(gateway, user_id, as_of=now, consistency_token=last)  # a token beside as_of: checked only
    shown = ("id", "memory", "version", "state", "metadata", "categories", "created_at", "updated_at")
    assert [{k: r[k] for k in shown} for r in past_list["results"]] == \
           [{k: r[k] for k in shown} for r in live_list["results"]]
    assert {r["id"] for r in _search(gateway, user_id, "deploy target", as_of=now)["results"]} == {a, b}
    assert gateway.get(f"/v1/memories/{c}", params={"user_id": user_id, "as_of": now}).status_code == 404

    before = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
    assert _search(gateway, user_id, "deploy target", as_of=before)["results"] == []
    assert _list(gateway, user_id, as_of=before)["results"] == []

    # Bad moments: 422 naming the field, nothing appended.
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    other = (partition_of(user_id) + 1) % EVENTS_PARTITIONS
    for bad in ("yesterday", future, "other.topic/0:1", f"{EVENTS_TOPIC}/{other}:0", f"{EVENTS_TOPIC}/0:x"):
        _refused(gateway.post("/v1/memories/search", json={"query": "deploy", "user_id": user_id, "as_of": bad}),
                 "as_of")
        _refused(gateway.get("/v1/memories", params={"user_id": user_id, "as_of": bad}), "as_of")
    _refused(gateway.post("/v1/memories/search", json={"query": "deploy", "user_id": user_id, "as_of": now,
                                                       "include_shared": True}), "include_shared")
    past_end = f"{EVENTS_TOPIC}/{partition_of(user_id)}:{2**40}"
    _refused(gateway.get(f"/v1/memories/{a}", params={"user_id": user_id, "as_of": past_end}), "as_of")

    # After an erasure the past is gone too: the events cannot be opened any more.
    code, doc, err = recallstack(settings, "users", "erase", user_id, "--yes", "--reason", "e2e as_of", "--json")
    assert code == 0, (doc, err)
    for moment in (t1, at_t1, now):
        assert _search(gateway, user_id, "deploy target", as_of=moment)["results"] == []
        assert _list(gateway, user_id, as_of=moment)["results"] == []
        assert gateway.get(f"/v1/memories/{a}", params={"user_id": user_id, "as_of": moment}).status_code == 404


def test_the_python_sdk_passes_as_of(services, user_id):
    """The SDK's search, get_all, get and get_context take `as_of` (a token or a datetime), sync and async."""
    from recallstack import AsyncClient, Client, NotFound

    with Client(services.gateway_url) as client:
        added = client.add("The on-call rotation starts with Dana", user_id=user_id, infer=False)
        a, t1 = added.results[0]["id"], added.consistency_token
        client.update(a, "The on-call rotation starts with Eli", user_id=user_id)
        later = client.add("The pager number changed", user_id=user_id, infer=False).results[0]["id"]
        found = client.search("who starts the on-call rotation", user_id=user_id, as_of=t1)
        assert [(r["id"], r["memory"]) for r in found.results] == [(a, "The on-call rotation starts with Dana")]
        assert [m["memory"] for m in client.get_all(user_id=user_id, as_of=t1).results] == [
            "The on-call rotation starts with Dana"]
        assert client.get(a, user_id=user_id, as_of=t1)["memory"] == "The on-call rotation starts with Dana"
        with pytest.raises(NotFound):
            client.get(later, user_id=user_id, as_of=t1)
        assert "Dana" in client.get_context("on-call", user_id=user_id, as_of=t1).context
        now = client.search("who starts the on-call rotation", user_id=user_id, as_of=datetime.now(timezone.utc))
        assert now.results[0]["memory"] == "The on-call rotation starts with Eli"

    async def via_async():
        async with AsyncClient(services.gateway_url) as client:
            return await client.search("on-call rotation", user_id=user_id, as_of=t1)
    assert [r["memory"] for r in asyncio.run(via_async()).results] == ["The on-call rotation starts with Dana"]
