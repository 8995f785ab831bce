"""The MCP search_memory tool's `as_of` (issue 26 item 4), driven in memory by the official MCP client,
the SDK underneath talking to an httpx.MockTransport (a stand-in for POST /v1/memories/search; the SDK's
`as_of` against the real stack is in tests/e2e/test_as_of.py)."""

from __future__ import annotations

import json

import httpx
from mcp import Client

from mcp_server.server import McpConfig, build_server
from recallstack import AsyncClient


async def test_search_memory_passes_as_of_and_leaves_it_out_when_empty():
    sent: list[dict] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={"results": [], "degraded": [], "cache": "off"})

    sdk = AsyncClient("http://recallstack.test", "rsk_" + "A" * 43, transport=httpx.MockTransport(answer))
    async with Client(build_server(McpConfig("http://recallstack.test", None, "alice"), client=sdk)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert "as_of" in tools["search_memory"].input_schema["properties"]
        moment = "2026-05-01T14:00:00Z"
        assert not (await client.call_tool("search_memory", {"query": "deploy", "as_of": moment})).is_error
        assert not (await client.call_tool("search_memory", {"query": "deploy"})).is_error
    await sdk.aclose()
    assert sent[0]["as_of"] == moment and sent[0]["user_id"] == "alice"
    assert "as_of" not in sent[1]
