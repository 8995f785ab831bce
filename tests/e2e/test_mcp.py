"""The MCP server driven by the official `mcp` SDK's real client: over stdio (the
`recallstack mcp` process an IDE spawns) and over streamable HTTP (/mcp on the gateway).
Tools and their JSON schemas, add -> search -> delete, bad arguments, a backend that is
down: every failure is a tool error (isError) and the server keeps serving."""

from __future__ import annotations

import os
import shutil
import sys
import uuid

import httpx2
import jsonschema
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from recallstack import Client as Sdk
from tests.conftest import REPO
from tests.e2e.conftest import admin_headers

pytestmark = pytest.mark.e2e

TOOLS = {"add_memories": ["text"], "search_memory": ["query"], "list_memories": [], "get_memory": ["memory_id"],
         "update_memory": ["memory_id"], "delete_memory": ["memory_id"], "delete_all_memories": ["confirm"],
         "get_context": ["query"], "search_graph": ["name"], "core_memory_read": [],
         "core_memory_append": ["label", "content"], "core_memory_replace": ["label", "old_content", "new_content"],
         "get_user_profile": []}


def stdio(base_url: str, user_id: str) -> Client:
    """The MCP client with `recallstack mcp` spawned as an IDE would, configured by env."""
    entry = shutil.which("recallstack", path=str(REPO / ".venv" / "bin"))
    command, args = (entry, ["mcp"]) if entry else (sys.executable, ["-m", "cli.main", "mcp"])
    env = {"RECALLSTACK_URL": base_url, "RECALLSTACK_MCP_USER_ID": user_id, "RECALLSTACK_MCP_AGENT_ID": "test-agent",
           "PYTHONPATH": str(REPO), "RECALLSTACK_API_KEY": os.environ.get("RECALLSTACK_API_KEY", "")}
    return Client(StdioServerParameters(command=command, args=args, env=env, cwd=str(REPO)), read_timeout_seconds=60)


def over_http(gateway_url: str, user_id: str | None, key: str | None = None) -> Client:
    """The MCP client over HTTP; the session's admin key unless `key`; no user header with None."""
    headers = {"X-Recallstack-Agent-Id": "http-agent",
               "Authorization": f"Bearer {key or os.environ.get('RECALLSTACK_API_KEY', '')}"}
    if user_id is not None:
        headers["X-Recallstack-User-Id"] = user_id
    http = httpx2.AsyncClient(headers=headers, timeout=60)
    return Client(streamable_http_client(f"{gateway_url}/mcp", http_client=http), read_timeout_seconds=60)


def text_of(result) -> str:
    return " ".join(block.text for block in result.content if getattr(block, "text", None))


async def ok(client: Client, tool: str, arguments: dict) -> dict:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {text_of(result)}"
    return result.structured_content


async def fails(client: Client, tool: str, arguments: dict) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool}({arguments}) should be a tool error, got {result.structured_content}"
    return text_of(result)


async def check_tools(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == set(TOOLS)
    for name, tool in tools.items():
        schema = tool.input_schema
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object" and sorted(schema.get("required", [])) == sorted(TOOLS[name])
        assert len(tool.description) > 120, f"{name}: the description should say when to call it and what it returns"
        for prop, spec in schema["properties"].items():
            assert spec.get("description"), f"{name}.{prop} has no description"
        assert "ctx" not in schema["properties"]
        assert tool.annotations is not None
    validate = jsonschema.Draft202012Validator
    assert validate(tools["search_memory"].input_schema).is_valid({"query": "q", "limit": 5})
    assert not validate(tools["search_memory"].input_schema).is_valid({"query": "q", "limit": 0})
    assert not validate(tools["add_memories"].input_schema).is_valid({"categories": ["x"]})
    assert validate(tools["delete_all_memories"].input_schema).is_valid({"confirm": True})
    assert tools["search_memory"].annotations.read_only_hint is True
    assert tools["delete_memory"].annotations.destructive_hint is True


async def add_search_delete(client: Client, user_id: str, base_url: str) -> None:
    fact = f"The user's staging cluster is called aurora-{uuid.uuid4().hex[:6]}"
    stored = await ok(client, "add_memories", {"text": fact, "categories": ["infrastructure"],
                                               "metadata": {"source": "test"}})
    [memory] = stored["stored"]
    assert memory["memory"] == fact and stored["user_id"] == user_id
    found = await ok(client, "search_memory", {"query": "what is the staging cluster called?", "limit": 5})
    assert found["results"][0]["id"] == memory["id"] and found["results"][0]["memory"] == fact  # read-your-writes
    assert found["results"][0]["categories"] == ["infrastructure"]
    # rerank: the session's stack has no reranker: the tool searches as usual and says so
    reranked = await ok(client, "search_memory", {"query": "what is the staging cluster called?", "rerank": True})
    assert reranked["results"][0]["id"] == memory["id"] and [d["source"] for d in reranked["degraded"]] == ["rerank"]
    got = await ok(client, "get_memory", {"memory_id": memory["id"]})
    assert got["user_id"] == user_id and got["metadata"] == {"source": "test"}
    await ok(client, "update_memory", {"memory_id": memory["id"], "text": fact + " (in eu-west-1)"})
    context = await ok(client, "get_context", {"query": "staging cluster", "max_tokens": 200})
    assert fact + " (in eu-west-1)" in context["context"] and memory["id"] in context["memory_ids"]
    profile = await ok(client, "get_user_profile", {})
    assert profile["user_id"] == user_id and {"facts", "preferences", "people"} <= set(profile["profile"])
    assert any(memory["id"] in item["memory_ids"] and item["text"].startswith(fact)
               for item in profile["profile"]["facts"])  # built on read, or by a worker pass before the update
    listed = await ok(client, "list_memories", {"page_size": 10})
    assert [m["id"] for m in listed["results"]] == [memory["id"]] and listed["total"] == 1
    # The memory is the configured user's, as the REST API sees it.
    with Sdk(base_url) as sdk:
        assert sdk.get(memory["id"], user_id=user_id).memory == fact + " (in eu-west-1)"
    assert (await ok(client, "delete_memory", {"memory_id": memory["id"]}))["status"] == "deleted"
    after = await ok(client, "search_memory", {"query": "what is the staging cluster called?"})
    assert memory["id"] not in [m["id"] for m in after["results"]]
    assert "not found" in await fails(client, "get_memory", {"memory_id": memory["id"]})


async def bad_arguments(client: Client) -> None:
    assert "query" in await fails(client, "search_memory", {})                              # missing
    assert "limit" in await fails(client, "search_memory", {"query": "q", "limit": "many"})  # wrong type
    assert "limit" in await fails(client, "search_memory", {"query": "q", "limit": 500})     # out of range
    assert "unknown argument(s) limt" in await fails(client, "search_memory", {"query": "q", "limt": 3})
    assert "memory_id" in await fails(client, "get_memory", {"memory_id": "not-a-uuid"})
    assert "nothing to update" in await fails(client, "update_memory", {"memory_id": str(uuid.uuid4())})
    assert "not found" in await fails(client, "delete_memory", {"memory_id": str(uuid.uuid4())})
    assert "confirm=true" in await fails(client, "delete_all_memories", {"confirm": False})
    assert "filters" in await fails(client, "search_memory", {"query": "q", "filters": {"AND": {"oops": 1}}})
    unknown = await client.call_tool("no_such_tool", {})
    assert unknown.is_error
    # Still serving after all of that.
    assert "results" in await ok(client, "search_memory", {"query": "anything"})


async def test_stdio_tools_and_schemas(services, user_id):
    async with stdio(services.gateway_url, user_id) as client:
        await check_tools(client)


async def test_stdio_add_search_delete(services, user_id):
    async with stdio(services.gateway_url, user_id) as client:
        await add_search_delete(client, user_id, services.gateway_url)
        stored = await ok(client, "add_memories", {"text": "one more", "run_id": "r1"})
        with Sdk(services.gateway_url) as sdk:
            assert sdk.get(stored["stored"][0]["id"], user_id=user_id).agent_id == "test-agent"
        assert (await ok(client, "delete_all_memories", {"confirm": True}))["scope"] == {"user_id": user_id}
        assert (await ok(client, "list_memories", {}))["total"] == 0


async def test_stdio_bad_arguments_are_tool_errors(services, user_id):
    async with stdio(services.gateway_url, user_id) as client:
        await bad_arguments(client)


async def test_stdio_backend_down_is_a_tool_error_not_a_crash(user_id):
    async with stdio("http://127.0.0.1:1", user_id) as client:
        await check_tools(client)  # listing needs no backend
        for _ in range(2):          # and the server survives the failures
            message = await fails(client, "search_memory", {"query": "anything"})
            assert "unavailable" in message and "http://127.0.0.1:1" in message
        assert "unavailable" in await fails(client, "add_memories", {"text": "lost?"})
        assert "unavailable" in await fails(client, "get_context", {"query": "q"})


async def gateway_serves_mcp(gateway_url: str) -> None:
    async with httpx2.AsyncClient() as http:
        probe = await http.post(f"{gateway_url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                headers={"Accept": "application/json, text/event-stream"})
    if probe.status_code == 404:
        pytest.fail("the gateway does not serve /mcp: it runs code from before the MCP mount; restart it "
                    "(recallstack down/up, or restart the gateway process)")


async def test_http_tools_add_search_delete(services, user_id):
    await gateway_serves_mcp(services.gateway_url)
    async with over_http(services.gateway_url, user_id) as client:
        await check_tools(client)
        await add_search_delete(client, user_id, services.gateway_url)
        stored = await ok(client, "add_memories", {"text": "written over HTTP"})
        with Sdk(services.gateway_url) as sdk:  # the X-Recallstack-* headers chose user and agent
            assert sdk.get(stored["stored"][0]["id"], user_id=user_id).agent_id == "http-agent"
        await ok(client, "delete_all_memories", {"confirm": True})


async def test_http_bad_arguments_are_tool_errors(services, user_id):
    await gateway_serves_mcp(services.gateway_url)
    async with over_http(services.gateway_url, user_id) as client:
        await bad_arguments(client)
    # The gateway's REST proxying is untouched by the mount.
    async with httpx2.AsyncClient(headers=admin_headers()) as http:
        assert (await http.get(f"{services.gateway_url}/healthz")).json() == {"status": "ok"}
        listed = await http.get(f"{services.gateway_url}/v1/memories", params={"user_id": user_id})
        assert listed.status_code == 200


async def test_http_tools_act_only_for_the_keys_user(services, gateway):
    """Every tool with bob's key: alice's memories are not found, not listed, not changed; naming
    alice as the user is refused; without a user header the tools act for bob."""
    await gateway_serves_mcp(services.gateway_url)
    run = uuid.uuid4().hex[:8]
    alice, bob = f"mcp-alice-{run}", f"mcp-bob-{run}"
    keys = {}
    for user in (alice, bob):
        answer = gateway.post("/v1/keys", json={"user_id": user, "scopes": ["write"]})
        assert answer.status_code == 201, answer.text
        keys[user] = answer.json()["key"]
    added = gateway.post("/v1/memories", json={"text": f"alice's private note {run}"},
                         headers={"Authorization": f"Bearer {keys[alice]}"}).json()
    memory = added["results"][0]["id"]
    gateway.get("/v1/memories", params={"user_id": alice, "consistency_token": added["consistency_token"]})
    async with over_http(services.gateway_url, None, keys[bob]) as client:
        for tool, arguments in (("get_memory", {"memory_id": memory}),
                                ("update_memory", {"memory_id": memory, "text": "changed by bob"}),
                                ("delete_memory", {"memory_id": memory})):
            assert "not found" in await fails(client, tool, arguments)
        for tool, arguments in (("search_memory", {"query": "private note"}), ("list_memories", {}),
                                ("get_context", {"query": "private note"})):
            found = str(await ok(client, tool, arguments))
            assert "private note" not in found and memory not in found
        await ok(client, "add_memories", {"text": f"bob's own note {run}"})
        await ok(client, "delete_all_memories", {"confirm": True})  # bob's, not alice's
    async with over_http(services.gateway_url, alice, keys[bob]) as client:  # bob's key naming alice
        for tool, arguments in (("search_memory", {"query": "private note"}), ("list_memories", {}),
                                ("add_memories", {"text": "planted"}), ("delete_all_memories", {"confirm": True}),
                                ("get_context", {"query": "note"})):
            message = await fails(client, tool, arguments)
            assert "private note" not in message and memory not in message
    still = gateway.get(f"/v1/memories/{memory}", params={"user_id": alice})
    assert still.status_code == 200 and still.json()["memory"] == f"alice's private note {run}"
    # Once alice shares it, bob's search finds it when asked to, saying who shared it.
    shared = gateway.post(f"/v1/memories/{memory}/shares", json={"grantee_user_id": bob},
                          headers={"Authorization": f"Bearer {keys[alice]}"})
    assert shared.status_code == 202, shared.text
    gateway.get("/v1/shared", params={"user_id": bob, "consistency_token": shared.json()["consistency_token"]})
    async with over_http(services.gateway_url, None, keys[bob]) as client:
        assert memory not in str(await ok(client, "search_memory", {"query": "private note"}))
        found = await ok(client, "search_memory", {"query": "private note", "include_shared": True})
        hit = next(m for m in found["results"] if m["id"] == memory)
        assert hit["shared"]["by"] == alice
