"""The MCP server's instructions and its search_graph tool (issue 25 item 5): the pure
neighbourhood of a name in a user's graph, and the tool driven in memory by the official MCP
client, the SDK underneath talking to an httpx.MockTransport (a stand-in for GET /v1/graph
and GET /v1/me; tests/e2e/test_mcp_install.py runs them against the real stack)."""

from __future__ import annotations

from contextlib import asynccontextmanager

import httpx
from mcp import Client

from mcp_server.graph_tool import matching, neighbourhood
from mcp_server.server import INSTRUCTIONS, McpConfig, build_server
from recallstack import AsyncClient

M1, M2, M3 = ("3f1c2a9e-0b7d-4c41-9a77-1f0e5d2b8c1" + str(i) for i in range(3))
GRAPH = {
    "entities": [{"name": "Alice Moreau", "type": "person", "mentions": 3, "aliases": ["Alice"]},
                 {"name": "Acme Corp", "type": "organization", "mentions": 2},
                 {"name": "Lisbon", "type": "place", "mentions": 1},
                 {"name": "Bob", "type": "person", "mentions": 1}],
    "relations": [{"source": "Alice Moreau", "target": "Acme Corp", "type": "WORKS_AT", "memory_id": M1,
                   "valid_from": "2024-05-02T10:00:00+00:00", "valid_to": None},
                  {"source": "Acme Corp", "target": "Lisbon", "type": "LOCATED_IN", "memory_id": M2,
                   "valid_from": "2024-06-05T08:00:00+00:00", "valid_to": None},
                  {"source": "Bob", "target": "Lisbon", "type": "LIVES_IN", "memory_id": M3,
                   "valid_from": "2024-06-05T08:00:00+00:00", "valid_to": None}],
    "co_mentions": [{"source": "Alice Moreau", "source_type": "person", "target": "Bob", "target_type": "person",
                     "weight": 2}],
}


def test_a_name_matches_exactly_by_alias_and_case_else_by_part():
    assert [e["name"] for e in matching(GRAPH["entities"], "  alice ")] == ["Alice Moreau"]
    assert [e["name"] for e in matching(GRAPH["entities"], "ACME corp")] == ["Acme Corp"]
    assert [e["name"] for e in matching(GRAPH["entities"], "moreau")] == ["Alice Moreau"]
    assert matching(GRAPH["entities"], "Zed") == []


def test_the_neighbourhood_of_a_name_one_and_two_hops():
    one = neighbourhood(GRAPH, "Alice")
    assert [e["name"] for e in one["matches"]] == ["Alice Moreau"]
    assert [(r["source"], r["type"], r["target"]) for r in one["relations"]] == [
        ("Alice Moreau", "WORKS_AT", "Acme Corp")]
    assert "valid_to" not in one["relations"][0]  # empty fields left out: it lands in a prompt
    assert {e["name"] for e in one["entities"]} == {"Alice Moreau", "Acme Corp"}
    assert one["co_mentions"][0]["target"] == "Bob" and one["memory_ids"] == [M1]
    two = neighbourhood(GRAPH, "Alice", depth=2)
    assert [r["type"] for r in two["relations"]] == ["WORKS_AT", "LOCATED_IN"]
    assert two["memory_ids"] == [M1, M2] and "Bob" not in {e["name"] for e in two["entities"]}
    assert len(neighbourhood(GRAPH, "Lisbon", limit=1)["relations"]) == 1


def test_an_unknown_name_says_so_and_offers_the_known_entities():
    answer = neighbourhood(GRAPH, "Zed")
    assert answer["matches"] == [] and answer["relations"] == [] and "no entity named like 'Zed'" in answer["message"]
    assert answer["known_entities"][:2] == ["Alice Moreau", "Acme Corp"]


@asynccontextmanager
async def in_memory(user_id: str | None):
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.url.path == "/v1/me":
            return httpx.Response(200, json={"user_id": "key-owner", "scopes": ["write"]})
        return httpx.Response(200, json={"user_id": request.url.params.get("user_id"), **GRAPH})

    sdk = AsyncClient("http://recallstack.test", "rsk_" + "A" * 43, transport=httpx.MockTransport(answer))
    async with Client(build_server(McpConfig("http://recallstack.test", None, user_id), client=sdk)) as client:
        yield client, sent
    await sdk.aclose()


async def test_initialize_gives_the_instructions_and_search_graph_reads_the_users_graph():
    async with in_memory("alice") as (client, sent):
        assert client.instructions == INSTRUCTIONS
        for word in ("search_memory", "add_memories", "search_graph", "user", "consistency token"):
            assert word in client.instructions
        tools = {t.name: t for t in (await client.list_tools()).tools}
        schema = tools["search_graph"].input_schema
        assert schema["required"] == ["name"] and tools["search_graph"].annotations.read_only_hint is True
        result = await client.call_tool("search_graph", {"name": "alice", "depth": 2})
        assert not result.is_error and result.structured_content["memory_ids"] == [M1, M2]
        [request] = sent
        assert request.url.path == "/v1/graph" and request.url.params["user_id"] == "alice"
        for bad in ({"name": ""}, {"name": "x", "depth": 3}, {"name": "x", "limt": 1}):
            assert (await client.call_tool("search_graph", bad)).is_error
        assert len(sent) == 1  # bad arguments send nothing


async def test_with_only_a_key_the_tools_name_the_keys_own_user():
    async with in_memory(None) as (client, sent):
        for _ in range(2):
            assert not (await client.call_tool("search_graph", {"name": "Bob"})).is_error
        assert [r.url.path for r in sent] == ["/v1/me", "/v1/graph", "/v1/graph"]  # looked up once per key
        assert sent[1].url.params["user_id"] == "key-owner"
