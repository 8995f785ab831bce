"""Contract tests of every write endpoint against the real log: each consumes the topic
and asserts the exact events (types, keys, fields) a write appended."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from domain.events import (
    ConversationReceived,
    MemoryCreated,
    MemoryDeleted,
    MemoryScopeDeleted,
    MemoryUpdated,
)
from tests.e2e.conftest import admin_headers, request_actor

pytestmark = pytest.mark.e2e


def accepted(answer):
    assert answer.status_code == 202, answer.text
    return answer.json()


def test_add_appends_one_memory_created_keyed_by_user(gateway, log, user_id):
    log.mark()
    body = accepted(gateway.post("/v1/memories", json={
        "text": "Prefers tabs over spaces", "user_id": user_id, "agent_id": "cursor", "run_id": "r-1",
        "app_id": "ide", "metadata": {"lang": "go", "n": 2}, "categories": ["preferences"], "importance": 0.7,
        "occurred_at": "2023-05-08T13:56:00Z"}, headers={"X-Request-ID": "req-42"}))
    [(key, event)] = [r for r in log.records(body["consistency_token"])
                      if getattr(r[1], "memory_id", None) == body["results"][0]["id"]]
    assert key == user_id.encode()
    assert isinstance(event, MemoryCreated)
    assert (event.memory_id, event.text, event.user_id, event.agent_id, event.run_id, event.app_id) == \
        (body["results"][0]["id"], "Prefers tabs over spaces", user_id, "cursor", "r-1", "ide")
    assert event.metadata == {"lang": "go", "n": 2} and event.categories == ("preferences",)
    assert event.importance == pytest.approx(0.7)
    assert event.happened_at == datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    assert event.actor == request_actor(user_id) and event.correlation_id == "req-42"
    assert len(event.embedding) == 384 and event.embedding_model == "sentence-transformers/all-MiniLM-L6-v2"


def test_messages_without_infer_store_user_and_assistant_messages_as_given(gateway, log, user_id):
    log.mark()
    body = accepted(gateway.post("/v1/memories", json={"user_id": user_id, "messages": [
        {"role": "system", "content": "You are helpful"},
        {"role": "user", "content": "I live in Lisbon"},
        {"role": "assistant", "content": "Lisbon is lovely"}]}))
    events = [e for _, e in log.records(body["consistency_token"], user_id)]
    assert [(e.text, e.metadata["role"]) for e in events] == [("I live in Lisbon", "user"),
                                                               ("Lisbon is lovely", "assistant")]


def test_messages_with_infer_append_a_conversation_for_extraction(gateway, log, user_id):
    log.mark()
    body = accepted(gateway.post("/v1/memories", json={"user_id": user_id, "infer": True, "messages": [
        {"role": "user", "content": "My sister Ana moved to Porto"}]}))
    assert body["results"] == [] and body["status"] == "queued"
    [(_, event)] = log.records(body["consistency_token"], user_id)
    assert isinstance(event, ConversationReceived)
    assert event.conversation_id == body["conversation_id"]
    assert [(m.role, m.content) for m in event.messages] == [("user", "My sister Ana moved to Porto")]


def test_batch_appends_every_memory_in_one_transaction(gateway, log, user_id):
    log.mark()
    items = [{"text": f"fact number {i}", "user_id": user_id} for i in range(50)]
    body = accepted(gateway.post("/v1/memories/batch", json={"memories": items}))
    events = [e for _, e in log.records(body["consistency_token"], user_id)]
    assert [e.text for e in events] == [f"fact number {i}" for i in range(50)]
    assert [e.memory_id for e in events] == [r["id"] for r in body["results"]]


def test_update_and_delete_append_their_events_after_the_add_is_visible(gateway, log, user_id):
    created = accepted(gateway.post("/v1/memories", json={"text": "Uses vim", "user_id": user_id}))
    memory_id, token = created["results"][0]["id"], created["consistency_token"]
    log.mark()
    updated = accepted(gateway.patch(f"/v1/memories/{memory_id}", params={"user_id": user_id},
                                     json={"text": "Uses neovim", "metadata": {"since": 2024}},
                                     headers={"X-Consistency-Token": token}))
    [(_, event)] = log.records(updated["consistency_token"], user_id)
    assert isinstance(event, MemoryUpdated)
    assert (event.memory_id, event.text, event.metadata, event.categories) == (memory_id, "Uses neovim",
                                                                                {"since": 2024}, None)
    assert len(event.embedding) == 384
    log.mark()
    deleted = accepted(gateway.delete(f"/v1/memories/{memory_id}", params={"user_id": user_id}))
    [(_, event)] = log.records(deleted["consistency_token"], user_id)
    assert isinstance(event, MemoryDeleted) and event.memory_id == memory_id
    # Gone from search, and a second delete is a 404 that appends nothing.
    found = gateway.post("/v1/memories/search", json={"query": "editor", "user_id": user_id,
                                                       "consistency_token": deleted["consistency_token"]})
    assert found.json()["results"] == []
    log.mark()
    again = gateway.delete(f"/v1/memories/{memory_id}", params={"user_id": user_id})
    assert again.status_code == 404 and log.unchanged(user_id)


def test_update_or_delete_of_another_users_memory_is_404_and_appends_nothing(gateway, log, user_id):
    created = accepted(gateway.post("/v1/memories", json={"text": "Private note", "user_id": user_id}))
    memory_id, token = created["results"][0]["id"], created["consistency_token"]
    log.mark()
    for call in (
        lambda: gateway.patch(f"/v1/memories/{memory_id}", params={"user_id": "mallory"}, json={"text": "x"},
                              headers={"X-Consistency-Token": token}),
        lambda: gateway.delete(f"/v1/memories/{memory_id}", params={"user_id": "mallory"},
                               headers={"X-Consistency-Token": token}),
        lambda: gateway.delete(f"/v1/memories/{uuid.uuid4()}", params={"user_id": user_id}),
    ):
        answer = call()
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "not_found"
    assert log.unchanged(user_id) and log.unchanged("mallory")


def test_delete_by_scope_removes_only_that_scope(gateway, log, user_id):
    accepted(gateway.post("/v1/memories", json={"text": "agent A likes jazz", "user_id": user_id, "agent_id": "a"}))
    kept = accepted(gateway.post("/v1/memories", json={"text": "agent B likes jazz", "user_id": user_id,
                                                       "agent_id": "b"}))
    log.mark()
    body = accepted(gateway.delete("/v1/memories", params={"user_id": user_id, "agent_id": "a"}))
    [(_, event)] = log.records(body["consistency_token"], user_id)
    assert isinstance(event, MemoryScopeDeleted) and (event.agent_id, event.run_id) == ("a", None)
    found = gateway.post("/v1/memories/search", json={"query": "jazz", "user_id": user_id,
                                                       "consistency_token": body["consistency_token"]}).json()
    assert [r["id"] for r in found["results"]] == [kept["results"][0]["id"]]


def test_idempotency_key_returns_the_first_answer_and_appends_nothing_new(gateway, log, user_id):
    request = {"json": {"text": "Birthday is 4 July", "user_id": user_id}, "headers": {"Idempotency-Key": "k-1"}}
    first = accepted(gateway.post("/v1/memories", **request))
    log.mark()
    assert accepted(gateway.post("/v1/memories", **request)) == first
    assert log.unchanged(user_id)
    other_body = gateway.post("/v1/memories", json={"text": "Something else", "user_id": user_id},
                              headers={"Idempotency-Key": "k-1"})
    assert other_body.status_code == 422 and other_body.json()["error"]["code"] == "idempotency_key_reused"
    assert log.unchanged(user_id)


def test_concurrent_retries_with_one_key_append_once(services, log, user_id):
    import httpx

    async def storm():
        async with httpx.AsyncClient(base_url=services.gateway_url, timeout=30, headers=admin_headers()) as client:
            calls = [client.post("/v1/memories", json={"text": "Allergic to cats", "user_id": user_id},
                                 headers={"Idempotency-Key": "storm"}) for _ in range(10)]
            return await asyncio.gather(*calls)

    log.mark()
    answers = asyncio.run(storm())
    assert {a.status_code for a in answers} == {202}
    bodies = [a.json() for a in answers]
    assert all(b == bodies[0] for b in bodies)
    events = log.records(bodies[0]["consistency_token"])
    assert [e.text for _, e in events if getattr(e, "user_id", None) == user_id] == ["Allergic to cats"]


def test_idempotency_survives_a_command_api_restart(gateway, settings, log, user_id):
    from infra import stack

    request = {"json": {"text": "Flat number is 4B", "user_id": user_id}, "headers": {"Idempotency-Key": "restart"}}
    first = accepted(gateway.post("/v1/memories", **request))
    processes = stack.table(settings)
    command_api = stack.service_specs(settings, ("command-api",))
    stack.down(command_api, processes)
    stack.up(command_api, processes)
    log.mark()
    assert accepted(gateway.post("/v1/memories", **request)) == first
    assert log.unchanged(user_id)
