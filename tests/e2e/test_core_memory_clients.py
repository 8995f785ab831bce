"""Core memory blocks through the clients: the Python SDK's core_memory_* methods (sync and async,
read-your-writes without passing tokens, refusals as typed errors) and the MCP tools with Letta's
signatures over stdio (an agent's own block shadows the user's of the same label; a refusal is a
tool error naming why and changes nothing)."""

from __future__ import annotations

import pytest

from recallstack import AsyncClient, Block, Client, InvalidRequest, NotFound
from tests.e2e.test_mcp import fails, ok, stdio

pytestmark = pytest.mark.e2e


def test_the_sdk_edits_and_reads_blocks(services, user_id):
    with Client(services.gateway_url) as client:
        client.core_memory_set("human", "Ana.", limit_tokens=20, user_id=user_id)
        client.core_memory_append("human", "Ana lives in Lyon.", user_id=user_id)
        client.core_memory_replace("human", "Lyon", "Porto", user_id=user_id)
        block = client.core_memory_read("human", user_id=user_id)  # no token passed: the client carries it
        assert isinstance(block, Block) and str(block) == "Ana.\nAna lives in Porto." and block.version == 3
        assert block.limit_tokens == 20 and 0 < block.tokens <= 20
        assert [b.label for b in client.core_memory_list(user_id=user_id)] == ["human"]
        with pytest.raises(InvalidRequest) as refused:
            client.core_memory_append("human", "word " * 40, user_id=user_id)
        assert refused.value.code == "block_too_large" and refused.value.details["limit_tokens"] == 20
        with pytest.raises(InvalidRequest) as missing:
            client.core_memory_replace("human", "Berlin", "Rome", user_id=user_id)
        assert missing.value.code == "old_content_not_found"
        with pytest.raises(NotFound):
            client.core_memory_read("nothing", user_id=user_id)
        with pytest.raises(InvalidRequest):  # checked before any request
            client.core_memory_read("../memories", user_id=user_id)
        client.core_memory_delete("human", user_id=user_id)
        history = client.core_memory_history("human", user_id=user_id)
        assert [h["event_type"] for h in history][-1] == "CoreMemoryBlockDeleted" and len(history) == 4


async def test_the_async_sdk_edits_an_agents_block(services, user_id):
    async with AsyncClient(services.gateway_url) as client:
        await client.core_memory_set("persona", "I review code.", user_id=user_id, agent_id="reviewer")
        await client.core_memory_append("persona", "I am strict about tests.", user_id=user_id, agent_id="reviewer")
        block = await client.core_memory_read("persona", user_id=user_id, agent_id="reviewer")
        assert block.value == "I review code.\nI am strict about tests." and block.agent_id == "reviewer"
        assert await client.core_memory_list(user_id=user_id) == []  # the user-wide scope has none


async def test_the_mcp_tools_have_lettas_signatures_and_act_on_the_right_block(services, user_id):
    with Client(services.gateway_url) as sdk:
        sdk.core_memory_set("human", "The user is Ana.", limit_tokens=40, user_id=user_id)
        sdk.core_memory_set("persona", "I am the test agent.", user_id=user_id, agent_id="test-agent")
    async with stdio(services.gateway_url, user_id) as client:  # configured with agent test-agent
        appended = await ok(client, "core_memory_append", {"label": "human", "content": "Ana codes in Go."})
        assert appended["agent_id"] is None and appended["version"] == 2  # the user-wide block
        await ok(client, "core_memory_replace", {"label": "persona", "old_content": "test agent",
                                                 "new_content": "reviewing agent"})
        persona = await ok(client, "core_memory_read", {"label": "persona"})
        assert persona["value"] == "I am the reviewing agent." and persona["agent_id"] == "test-agent"
        everything = await ok(client, "core_memory_read", {})
        assert [(b["label"], b["agent_id"]) for b in everything["blocks"]] == [("human", None),
                                                                               ("persona", "test-agent")]
        too_big = await fails(client, "core_memory_append", {"label": "human", "content": "Go " * 60})
        assert "limit of 40" in too_big and "nothing was changed" in too_big
        assert "old_content" in await fails(client, "core_memory_replace", {"label": "human", "old_content": "Rust",
                                                                            "new_content": "Zig"})
        assert "not found" in await fails(client, "core_memory_append", {"label": "nothing", "content": "x"})
        assert "label" in await fails(client, "core_memory_read", {"label": "Not A Label"})
        human = await ok(client, "core_memory_read", {"label": "human"})
        assert human["value"] == "The user is Ana.\nAna codes in Go." and human["version"] == 2
        context = await ok(client, "get_context", {"query": "what language does Ana use?", "max_tokens": 300})
        assert context["context"].startswith("## Core memory\n<human>\nThe user is Ana.")
