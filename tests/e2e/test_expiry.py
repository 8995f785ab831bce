"""E2E: memory expiry through REST, on the running services. A memory added with a ttl is found by
search, list and context; from its expires_at on it is gone from all three at once (a cached
answer too), before any worker runs; `recallstack worker forget --once` then appends MemoryExpired,
which the history shows, and include_expired still lists it. Clearing the expiry brings it back.
Bad expiries are 422s that name the field and append nothing."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.e2e.test_workers import _worker_json, memories, wait_for

TTL_S = 6  # long enough to search, list and build a context before it passes, on a loaded box


def _search(gateway, user_id: str, query: str, **extra) -> dict:
    answer = gateway.post("/v1/memories/search", json={"query": query, "user_id": user_id, **extra})
    assert answer.status_code == 200, answer.text
    return answer.json()


def _context_ids(gateway, user_id: str, query: str, **extra) -> list[str]:
    answer = gateway.post("/v1/context", json={"query": query, "user_id": user_id, **extra})
    assert answer.status_code == 200, answer.text
    return [m["id"] for m in answer.json()["memories"]]


def test_an_expiring_memory_leaves_every_read_at_once_and_the_worker_records_it(gateway, services, user_id):
    added = gateway.post("/v1/memories", json={"text": "Nadia is the on-call engineer for the payments API",
                                               "user_id": user_id, "ttl_seconds": TTL_S})
    assert added.status_code == 202, added.text
    began = datetime.now(timezone.utc)
    [expiring] = [r["id"] for r in added.json()["results"]]
    kept = gateway.post("/v1/memories", json={"text": "Nadia owns the payments API runbook", "user_id": user_id})
    token = kept.json()["consistency_token"]
    kept_id = kept.json()["results"][0]["id"]

    query = "who is on call for the payments API"
    first = _search(gateway, user_id, query, consistency_token=token)
    assert expiring in [r["id"] for r in first["results"]]
    expires_at = datetime.fromisoformat(next(r for r in first["results"] if r["id"] == expiring)["expires_at"])
    assert began <= expires_at <= began + timedelta(seconds=TTL_S + 5)
    assert _search(gateway, user_id, query)["cache"] in ("hit", "miss")  # the answer is cached when it can be
    assert expiring in [m["id"] for m in memories(gateway, user_id)]
    assert expiring in _context_ids(gateway, user_id, query)
    got = gateway.get(f"/v1/memories/{expiring}", params={"user_id": user_id}).json()
    assert got["expired"] is False and got["state"] == "active"

    time.sleep(max(0.0, (expires_at - datetime.now(timezone.utc)).total_seconds()) + 0.2)
    # Gone from every read at once, the cached answer of the same search included; no worker has run.
    after = _search(gateway, user_id, query)
    assert expiring not in [r["id"] for r in after["results"]] and kept_id in [r["id"] for r in after["results"]]
    assert expiring not in [m["id"] for m in memories(gateway, user_id)]
    assert expiring not in _context_ids(gateway, user_id, query)
    namespaces = gateway.get("/v1/namespaces", params={"user_id": user_id}).json()
    assert namespaces["memories"] == 1
    got = gateway.get(f"/v1/memories/{expiring}", params={"user_id": user_id})
    assert got.status_code == 200 and got.json()["expired"] is True, got.text
    listed = memories(gateway, user_id, include_expired=True)
    assert {m["id"]: m["expired"] for m in listed} == {expiring: True, kept_id: False}

    done = _worker_json(services, {}, "forget", "--once", "--user", user_id)
    expire_actions = [a for a in done["actions"] if a["action"] == "expire"]
    assert [a["memory_ids"] for a in expire_actions] == [[expiring]], done
    wait_for(lambda: [m["id"] for m in memories(gateway, user_id, "forgotten", include_expired=True)] == [expiring],
             what="MemoryExpired projected")
    history = gateway.get(f"/v1/memories/{expiring}/history", params={"user_id": user_id}).json()["history"]
    assert [h["event"] for h in history] == ["MemoryCreated", "MemoryExpired"]
    assert history[1]["reason"] == "expired" and history[1]["actor"] == "worker:forget"
    again = _worker_json(services, {}, "forget", "--once", "--user", user_id)
    assert not [a for a in again["actions"] if a["action"] == "expire"], "recorded once"

    refused = gateway.post(f"/v1/memories/{expiring}/restore", params={"user_id": user_id})
    assert refused.status_code == 409 and "PATCH its expires_at" in refused.text, refused.text  # it would stay hidden
    # Clearing the expiry brings it back (as mem0 does): MemoryUpdated, then MemoryRestored.
    cleared = gateway.patch(f"/v1/memories/{expiring}", params={"user_id": user_id}, json={"expires_at": None})
    assert cleared.status_code == 202, cleared.text
    back = _search(gateway, user_id, query, consistency_token=cleared.json()["consistency_token"])
    assert expiring in [r["id"] for r in back["results"]]
    assert next(r for r in back["results"] if r["id"] == expiring)["expires_at"] is None
    history = gateway.get(f"/v1/memories/{expiring}/history", params={"user_id": user_id}).json()["history"]
    assert [h["event"] for h in history][-2:] == ["MemoryUpdated", "MemoryRestored"]


def test_an_expiry_given_on_update_and_in_a_batch(gateway, user_id):
    later = (datetime.now(timezone.utc) + timedelta(days=3)).replace(microsecond=0)
    batch = gateway.post("/v1/memories/batch", json={"memories": [
        {"text": "The freeze lasts until Friday", "user_id": user_id, "expires_at": later.isoformat()},
        {"text": "Standup moved to 10:00", "user_id": user_id, "ttl_seconds": 3600}]})
    assert batch.status_code == 202, batch.text
    first, second = (r["id"] for r in batch.json()["results"])
    moved = gateway.patch(f"/v1/memories/{second}", params={"user_id": user_id},
                          headers={"X-Consistency-Token": batch.json()["consistency_token"]}, json={"expires_at": (later + timedelta(days=1)).replace(tzinfo=None).isoformat()})
    assert moved.status_code == 202, moved.text
    listed = {m["id"]: m for m in memories(gateway, user_id, consistency_token=moved.json()["consistency_token"])}
    assert datetime.fromisoformat(listed[first]["expires_at"]) == later
    assert datetime.fromisoformat(listed[second]["expires_at"]) == later + timedelta(days=1)  # naive: UTC


@pytest.mark.parametrize("body, field", [
    ({"text": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ({"text": "x", "expires_at": "soon"}, "expires_at"),
    ({"text": "x", "ttl_seconds": 0}, "ttl_seconds"),
    ({"text": "x", "ttl_seconds": "60"}, "ttl_seconds"),
    ({"text": "x", "ttl_seconds": 10 ** 12}, "ttl_seconds"),
    ({"text": "x", "ttl_seconds": 60, "expires_at": "2099-01-01T00:00:00Z"}, "ttl_seconds"),
])
def test_a_bad_expiry_is_a_422_naming_the_field_and_appends_nothing(gateway, log, user_id, body, field):
    log.mark()
    answer = gateway.post("/v1/memories", json={**body, "user_id": user_id})
    assert answer.status_code == 422, answer.text
    assert field in answer.text and answer.json()["error"]["code"]
    batch = gateway.post("/v1/memories/batch", json={"memories": [{"text": "fine", "user_id": user_id},
                                                                   {**body, "user_id": user_id}]})
    assert batch.status_code == 422 and f"memories.1.{field}" in batch.text, batch.text
    assert log.unchanged(user_id)


def test_a_bad_expiry_on_update_appends_nothing(gateway, log, user_id):
    added = gateway.post("/v1/memories", json={"text": "Lunch is at noon", "user_id": user_id})
    memory_id = added.json()["results"][0]["id"]
    memories(gateway, user_id, consistency_token=added.json()["consistency_token"])
    log.mark()
    for body in ({"expires_at": "2001-01-01"}, {"ttl_seconds": -1}, {"ttl_seconds": 5, "expires_at": "2099-01-01"}):
        answer = gateway.patch(f"/v1/memories/{memory_id}", params={"user_id": user_id}, json=body)
        assert answer.status_code == 422, answer.text
    assert log.unchanged(user_id)


def test_the_python_sdk_sets_shows_and_clears_an_expiry(services, user_id):
    from recallstack import AsyncClient, Client

    with Client(services.gateway_url, user_id=user_id) as sdk:
        week = sdk.add("The release branch is frozen", ttl_seconds=7 * 86_400).results[0].id
        day = sdk.add("The office is closed", expiration_date="2099-01-31").results[0].id
        shown = {m.id: m for m in sdk.get_all().results}
        assert shown[day].expires_at == datetime(2099, 2, 1, tzinfo=timezone.utc)  # mem0's date is inclusive
        assert shown[week].expires_at > datetime.now(timezone.utc) + timedelta(days=6) and not shown[week].expired
        sdk.update(week, expires_at=None)
        assert sdk.get(week).expires_at is None
        sdk.update(day, text="The office is closed on Friday")  # the expiry stays when not named
        assert sdk.get(day).expires_at == datetime(2099, 2, 1, tzinfo=timezone.utc)
        assert {m.id for m in sdk.get_all(include_expired=True).results} == {week, day}

    async def async_add() -> str:
        async with AsyncClient(services.gateway_url, user_id=user_id) as client:
            return (await client.add("Short lived", ttl_seconds=3600)).results[0].id

    import asyncio
    short = asyncio.run(async_add())
    with Client(services.gateway_url, user_id=user_id) as sdk:
        assert sdk.get(short).expires_at is not None


async def test_the_mcp_add_and_update_tools_take_an_expiry(services, user_id):
    from tests.e2e.test_mcp import fails, ok, over_http

    async with over_http(services.gateway_url, user_id) as client:
        stored = await ok(client, "add_memories", {"text": "Nadia is on call this week", "ttl_seconds": 604800})
        memory_id = stored["stored"][0]["id"]
        listed = await ok(client, "list_memories", {})
        [shown] = [m for m in listed["results"] if m["id"] == memory_id]
        assert datetime.fromisoformat(shown["expires_at"]) > datetime.now(timezone.utc) + timedelta(days=6)
        await ok(client, "update_memory", {"memory_id": memory_id, "never_expires": True})
        got = await ok(client, "get_memory", {"memory_id": memory_id})
        assert got["expires_at"] is None and got["expired"] is False
        assert "expires_at" in await fails(client, "add_memories", {"text": "x", "expires_at": "2001-01-01"})


def test_mem0s_client_sets_and_clears_an_expiration_date(services, gateway, user_id, tmp_path):
    from tests.e2e.test_mem0_client import mem0

    key = gateway.post("/v1/keys", json={"user_id": user_id, "scopes": ["write"]})
    assert key.status_code == 201, key.text
    done = mem0("expiry", services.gateway_url, key.json()["key"], user_id, tmp=tmp_path)
    assert done["get"]["expires_at"] == "2099-02-01T00:00:00+00:00"  # mem0's date is inclusive, in UTC
    assert done["cleared"]["expires_at"] is None and done["update"]["status"] == "processing"
    assert done["past"]["status"] == 422 and "expiration_date" in done["past"]["message"]
