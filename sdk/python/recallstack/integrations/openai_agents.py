"""OpenAI Agents SDK integration: memory tools an agent calls, and a `Session` that keeps the
conversation in recallstack (`pip install "recallstack-sdk[openai-agents]"`, openai-agents 0.24).

    from agents import Agent, Runner
    from recallstack import Client
    from recallstack.integrations.openai_agents import RecallstackSession, memory_tools

    client = Client()
    agent = Agent(name="assistant", instructions="Remember what the user tells you.",
                  tools=memory_tools(client, user_id="alice"))
    result = await Runner.run(agent, "I prefer dark mode", session=RecallstackSession("chat-1", client=client,
                                                                                      user_id="alice"))

The tools are function tools named add_memory and search_memories; a failing call becomes
the tool's answer to the model (for a refused request, recallstack's message naming the field).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from agents import FunctionTool, function_tool
from agents.items import TResponseInputItem

from recallstack.client import Client
from recallstack.errors import InvalidRequest, Unavailable
from recallstack.integrations.transcript import Transcript
from recallstack.types import Memory

__all__ = ["memory_tools", "RecallstackSession"]


def memory_tools(client: Client, *, user_id: str | None = None, agent_id: str | None = None,
                 app_id: str | None = None, limit: int = 5) -> list[FunctionTool]:
    """add_memory and search_memories for the user (`user_id`; default: the client's, else
    the API key's user), as Agents SDK function tools. search_memories answers a JSON list
    of {id, memory, score, created_at}, best first."""

    async def add_memory(text: str) -> str:
        """Remember a fact about the user for later conversations.

        Args:
            text: The fact to remember, as one self-contained sentence.
        """
        result = await asyncio.to_thread(client.add, text, user_id=user_id, agent_id=agent_id, app_id=app_id,
                                         infer=False)
        return json.dumps({"stored": result.ids})

    async def search_memories(query: str) -> str:
        """Search what is remembered about the user.

        Args:
            query: What to look for, in natural language.
        """
        found = await asyncio.to_thread(client.search, query, user_id=user_id, agent_id=agent_id, app_id=app_id,
                                        limit=limit)
        return json.dumps([{"id": m.id, "memory": m.memory, "score": m.score, "created_at": m.get("created_at")}
                           for m in found.results])

    return [function_tool(add_memory, failure_error_function=_tool_error),
            function_tool(search_memories, failure_error_function=_tool_error)]


def _tool_error(ctx: Any, error: Exception) -> str:
    """What the model reads when a tool fails: recallstack's own message for a refused request
    (it names the field, so the model can correct its call), a fixed line for anything else
    (the SDK's default: no internals reach the model)."""
    if isinstance(error, InvalidRequest):
        return f"recallstack refused the request: {error.message}"
    if isinstance(error, Unavailable):
        return "recallstack is unavailable for the moment; try again later."
    return "An error occurred while running the tool. Please try again."


# The item field that holds an item's text: that text is the memory, the rest goes in metadata.
_TEXT_FIELDS = ("content", "output", "arguments")


class RecallstackSession:
    """An Agents SDK `Session` (the protocol of `agents.memory.Session`) kept in recallstack:
    each input item is a memory of the user with `run_id` = session_id, in order, so a
    conversation survives restarts and is searchable like any other memory.

    A message's text (or a tool call's arguments, a tool output) is the memory's text; the
    item's other fields are stored with it (`openai_item` in metadata) and the item comes
    back as it went in. `clear_session()` deletes the session's items only."""

    session_settings = None

    def __init__(self, session_id: str, *, client: Client | None = None, user_id: str | None = None,
                 agent_id: str | None = None, app_id: str | None = None):
        self.session_id = session_id
        self.client = client or Client()
        self._transcript = Transcript(self.client, session_id, "openai_agents", user_id=user_id, agent_id=agent_id,
                                      app_id=app_id)

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        memories = await asyncio.to_thread(self._transcript.read, limit)
        return [_item(memory) for memory in memories]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        if items:
            await asyncio.to_thread(self._transcript.append, [_entry(dict(item)) for item in items])

    async def pop_item(self) -> TResponseInputItem | None:
        latest = await asyncio.to_thread(self._transcript.read, 1)
        if not latest:
            return None
        await asyncio.to_thread(self.client.delete, latest[0].id, user_id=self._transcript.user_id)
        return _item(latest[0])

    async def clear_session(self) -> None:
        await asyncio.to_thread(self._transcript.clear)


def _entry(item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    field = next((name for name in _TEXT_FIELDS if isinstance(item.get(name), str) and item[name].strip()), None)
    if field is not None:
        text = item.pop(field)
    else:  # content parts, or an item without text: a readable line; the item whole in metadata
        parts = item.get("content") if isinstance(item.get("content"), list) else []
        text = " ".join(p.get("text", "") for p in parts if isinstance(p, dict)).strip() or \
            f"({item.get('type') or 'message'} {item.get('name') or item.get('role') or ''})".replace(" )", ")")
    metadata = {"openai_item": json.dumps(item, separators=(",", ":"), default=str)}
    if field is not None:
        metadata["openai_text_field"] = field
    if item.get("role"):
        metadata["role"] = item["role"]
    return text, metadata


def _item(memory: Memory) -> TResponseInputItem:
    item = json.loads(memory.metadata.get("openai_item") or "{}")
    field = memory.metadata.get("openai_text_field")
    if field:
        item[field] = memory.memory
    return item  # type: ignore[return-value]
