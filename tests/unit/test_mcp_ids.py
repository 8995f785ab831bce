"""The MCP tools never turn an argument into a request for another endpoint (issue 19 item 2):
memory_id is published and enforced as a UUID, run/agent ids by the id pattern, before any
HTTP call. Driven in memory by the official client; the SDK underneath talks to an
httpx.MockTransport that records every request that would have left."""

from __future__ import annotations

import re
from contextlib import asynccontextmanager

import httpx
import pytest
from mcp import Client

from mcp_server.server import McpConfig, build_server
from recallstack import AsyncClient

MEMORY_ID = "3f1c2a9e-0b7d-4c41-9a77-1f0e5d2b8c10"
TRICKS = ["../../v1/memories", "..%2F..", f"{MEMORY_ID}/../../keys", f"../../v1/keys/{MEMORY_ID}",
          f"{MEMORY_ID}?user_id=other", f"{MEMORY_ID}#", f" {MEMORY_ID}", f"{MEMORY_ID}\n", "", "x" * 36]


@asynccontextmanager
async def tools():
    """(the MCP client, the requests the SDK sent) within one task (anyio's cancel scopes)."""
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(202 if request.method != "GET" else 200,
                              json={"id": MEMORY_ID, "memory": "m", "results": [{"id": MEMORY_ID}],
                                    "consistency_token": "recallstack.memory.events/0:1", "scope": {}})

    sdk = AsyncClient("http://recallstack.test", "rsk_" + "A" * 43, transport=httpx.MockTransport(answer))
    server = build_server(McpConfig("http://recallstack.test", None, "alice"), client=sdk)
    async with Client(server) as client:
        yield client, sent
    await sdk.aclose()


def text_of(result) -> str:
    return " ".join(block.text for block in result.content if getattr(block, "text", None))


async def test_memory_id_is_published_as_a_uuid():
    async with tools() as (client, _):
        listed = {t.name: t.input_schema for t in (await client.list_tools()).tools}
        for name in ("get_memory", "update_memory", "delete_memory"):
            pattern = listed[name]["properties"]["memory_id"]["pattern"]
            assert re.fullmatch(pattern.strip("^$"), MEMORY_ID.upper()) and not re.fullmatch(pattern.strip("^$"), "../x")
        for name, field in (("delete_all_memories", "agent_id"), ("delete_all_memories", "run_id"),
                            ("add_memories", "run_id")):
            assert "pattern" in listed[name]["properties"][field]["anyOf"][0], (name, field)


@pytest.mark.parametrize("trick", TRICKS, ids=repr)
async def test_a_memory_id_that_is_not_a_uuid_is_a_tool_error_before_any_request(trick):
    async with tools() as (client, sent):
        for tool, extra in (("delete_memory", {}), ("get_memory", {}), ("update_memory", {"text": "x"})):
            result = await client.call_tool(tool, {"memory_id": trick, **extra})
            assert result.is_error and "memory_id" in text_of(result), (tool, text_of(result))
        assert sent == []


async def test_scope_ids_are_checked_before_any_request():
    async with tools() as (client, sent):
        result = await client.call_tool("delete_all_memories", {"confirm": True, "run_id": "../../v1/keys"})
        assert result.is_error and "run_id" in text_of(result)
        result = await client.call_tool("add_memories", {"text": "x", "run_id": "a b"})
        assert result.is_error and "run_id" in text_of(result)
        assert sent == []


async def test_a_uuid_in_any_case_reaches_only_its_own_path():
    async with tools() as (client, sent):
        for tool in ("get_memory", "delete_memory"):
            result = await client.call_tool(tool, {"memory_id": MEMORY_ID.upper()})
            assert not result.is_error, text_of(result)
        assert [(r.method, r.url.raw_path.decode().partition("?")[0]) for r in sent] == [
            ("GET", f"/v1/memories/{MEMORY_ID}"), ("DELETE", f"/v1/memories/{MEMORY_ID}")]
