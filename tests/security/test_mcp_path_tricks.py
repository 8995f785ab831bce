"""Path tricks through MCP and the SDK (issue 19 item 2): no tool argument and no SDK
argument can reach another endpoint than its own.

The exploit this closes: `delete_memory {"memory_id": "../../v1/memories"}` became, through
the SDK and the base URL, a delete-all of the user's memories without the `confirm` that
`delete_all_memories` demands; `../../v1/keys/<id>` revoked a key. Here every such value is
sent by a user with an ordinary write key, through the real MCP server at the base URL's
/mcp and through the SDK against the base URL: each is refused with an error naming
memory_id, nothing is appended, and the user's memories and keys are all still there."""

from __future__ import annotations

import uuid

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from recallstack import AsyncClient, InvalidRequest
from tests.e2e.log_reader import end_offsets

pytestmark = pytest.mark.e2e

MEMORIES = 3


def tricks(memory_id: str, key_id: str) -> list[str]:
    """memory_id values that name another endpoint, or a memory id wrapped in something else."""
    return [
        "../../v1/memories", "../../v1/memories?user_id=x", "..%2F..%2Fv1%2Fmemories", "..%2F..", "..", "%2e%2e",
        f"../../v1/keys/{key_id}", f"..%2F..%2Fv1%2Fkeys%2F{key_id}", f"{memory_id}/../../keys",
        f"{memory_id}/../../keys/{key_id}", f"{memory_id}/shares", f"{memory_id}/restore",
        f"{memory_id}/..", f"{memory_id}?user_id=other", f"{memory_id}#", f"{memory_id}#/../../keys",
        f"{memory_id};x", f"{memory_id}%00", f"{memory_id}\x00", f"{memory_id}%2F..",
        f" {memory_id}", f"{memory_id} ", f"{memory_id}\n", f"\t{memory_id}", f"{memory_id}\r\n",
        "{" + memory_id + "}", f"urn:uuid:{memory_id}", memory_id.replace("-", ""), "", "null",
        f"http://127.0.0.1:8081/v1/memories/{memory_id}", f"//evil.example/{memory_id}",
    ]


@pytest.fixture
def victim(gateway):
    """A user with an ordinary write key, a second key, and a few memories."""
    user = f"paths-{uuid.uuid4().hex[:8]}"
    keys = []
    for scopes in (["write"], ["read"]):
        answer = gateway.post("/v1/keys", json={"user_id": user, "scopes": scopes})
        assert answer.status_code == 201, answer.text
        keys.append(answer.json())
    memories, token = [], None
    for n in range(MEMORIES):
        answer = gateway.post("/v1/memories", json={"text": f"path trick fact {n}: the user likes tea {n}"},
                              headers={"Authorization": f"Bearer {keys[0]['key']}"})
        assert answer.status_code == 202, answer.text
        memories.append(answer.json()["results"][0]["id"])
        token = answer.json()["consistency_token"]
    gateway.get("/v1/memories", params={"user_id": user, "consistency_token": token}).raise_for_status()
    return {"user": user, "key": keys[0]["key"], "key_ids": [k["key_id"] for k in keys], "memories": memories}


def mcp_over_http(gateway_url: str, key: str) -> Client:
    """The real MCP server at the base URL's /mcp, with the user's own key (no user header)."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
    return Client(streamable_http_client(f"{gateway_url}/mcp", http_client=http), read_timeout_seconds=60)


def text_of(result) -> str:
    return " ".join(block.text for block in result.content if getattr(block, "text", None))


def assert_all_still_there(gateway: httpx.Client, victim: dict) -> None:
    listed = gateway.get("/v1/memories", params={"user_id": victim["user"], "page_size": 100})
    assert listed.status_code == 200, listed.text
    assert sorted(m["id"] for m in listed.json()["results"]) == sorted(victim["memories"])
    assert all(m["state"] == "active" for m in listed.json()["results"])
    keys = gateway.get("/v1/keys", params={"user_id": victim["user"], "include_revoked": "true"}).json()["results"]
    assert sorted(k["key_id"] for k in keys) == sorted(victim["key_ids"])
    assert all(k["revoked_at"] is None for k in keys), keys


async def test_mcp_tools_refuse_every_path_trick_by_name(services, gateway, victim):
    before = await end_offsets(services.kafka_bootstrap)
    memory_id, key_id = victim["memories"][0], victim["key_ids"][1]
    async with mcp_over_http(services.gateway_url, victim["key"]) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        for name in ("get_memory", "update_memory", "delete_memory"):
            assert "pattern" in tools[name].input_schema["properties"]["memory_id"], name  # published, not only checked
        for trick in tricks(memory_id, key_id):
            for tool, extra in (("delete_memory", {}), ("get_memory", {}), ("update_memory", {"text": "pwned"})):
                result = await client.call_tool(tool, {"memory_id": trick, **extra})
                assert result.is_error, (tool, trick, result.structured_content)
                assert "memory_id" in text_of(result), (tool, trick, text_of(result))
        # A memory id in upper case is still the memory: served, not refused.
        got = await client.call_tool("get_memory", {"memory_id": memory_id.upper()})
        assert not got.is_error and got.structured_content["id"] == memory_id, text_of(got)
    assert await end_offsets(services.kafka_bootstrap) == before, "a refused tool call appended an event"
    assert_all_still_there(gateway, victim)


async def test_the_sdk_refuses_every_path_trick_by_name(services, gateway, victim):
    before = await end_offsets(services.kafka_bootstrap)
    memory_id, key_id = victim["memories"][0], victim["key_ids"][1]
    sent: list[str] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request.url.raw_path.decode().partition("?")[0])

    async with AsyncClient(services.gateway_url, victim["key"]) as sdk:
        sdk._http.event_hooks["request"].append(record)  # every request that leaves
        for trick in tricks(memory_id, key_id):
            for call in (lambda: sdk.delete(trick), lambda: sdk.get(trick), lambda: sdk.history(trick),
                         lambda: sdk.restore(trick), lambda: sdk.update(trick, "pwned")):
                with pytest.raises(InvalidRequest) as caught:
                    await call()
                assert caught.value.details == {"field": "memory_id"} and "memory_id" in caught.value.message
        assert sent == [], "a refused id reached the network"
        got = await sdk.get(memory_id.upper())  # upper case: the same memory
        assert got.id == memory_id and sent == [f"/v1/memories/{memory_id}"]
    assert await end_offsets(services.kafka_bootstrap) == before, "a refused SDK call appended an event"
    assert_all_still_there(gateway, victim)
