"""The MCP tools of core memory blocks, with Letta's signatures: core_memory_append(label, content),
core_memory_replace(label, old_content, new_content), and core_memory_read(label).

A label names the block this agent sees: the agent's own block of that label when the caller has
an agent_id and the agent has one, else the user's user-wide block (so an agent can keep its own
`persona` while sharing the user's `human`). Edits are checked by the server (the size limit, the
passage to replace) and serialized per block; a refusal comes back as a tool error naming why.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from mcp_server.toolkit import READING, Caller, Toolkit
from recallstack.core_memory import LABEL_RE
from recallstack.errors import NotFound

EDITING = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)
Label = Annotated[str, Field(description="The block's label, e.g. 'persona', 'human', 'project'",
                             pattern=f"^{LABEL_RE.pattern}$")]


def register(kit: Toolkit) -> None:
    kit.add(core_memory_read(kit), READING)
    kit.add(core_memory_append(kit), EDITING)
    kit.add(core_memory_replace(kit), EDITING)


async def _scope(who: Caller, label: str) -> str | None:
    """The agent_id of the block `label` means for this caller: the agent's own, else user-wide (None)."""
    if who.agent_id is None:
        return None
    try:
        await who.client.core_memory_read(label, user_id=who.user_id, agent_id=who.agent_id)
        return who.agent_id
    except NotFound:
        return None


def _shown(block: dict[str, Any]) -> dict[str, Any]:
    return {k: block.get(k) for k in ("label", "agent_id", "value", "tokens", "limit_tokens", "description",
                                      "version")}


def _edited(result) -> dict[str, Any]:
    """What an agent needs of an edit: the block's label, scope, version, value and size after it."""
    return {k: v for k, v in result.results[0].items() if k != "status"}


def core_memory_read(kit: Toolkit):
    async def core_memory_read(label: Annotated[str | None, Field(
            description="The block to read; omit to read every block", pattern=f"^{LABEL_RE.pattern}$")] = None,
            ctx: Context = None) -> dict[str, Any]:  # type: ignore[assignment]
        """Read your core memory: small named blocks (persona, human, project...) that are always
        placed first in your context. Returns the block's value, its size and its limit in tokens;
        without a label, every block (the user's, then your agent's own)."""
        async def action(who: Caller):
            if label is None:
                blocks = await who.client.core_memory_list(user_id=who.user_id)
                if who.agent_id:
                    blocks += await who.client.core_memory_list(user_id=who.user_id, agent_id=who.agent_id)
                return {"blocks": [_shown(b) for b in blocks]}
            return _shown(await who.client.core_memory_read(label, user_id=who.user_id,
                                                            agent_id=await _scope(who, label)))
        return await kit.run(ctx, "core_memory_read", action)
    return core_memory_read


def core_memory_append(kit: Toolkit):
    async def core_memory_append(
        label: Label,
        content: Annotated[str, Field(description="Text to add on a new line at the end of the block", min_length=1,
                                      max_length=64_000)],
        ctx: Context = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Append to the contents of a core memory block (Letta's core_memory_append).

        Use it to record something that should always be in your context: a lasting fact about
        the user (label 'human'), about yourself ('persona') or the project. The block has a size
        limit in tokens; past it the call fails and nothing is added: shorten the block first with
        core_memory_replace."""
        async def action(who: Caller):
            return _edited(await who.client.core_memory_append(label, content, user_id=who.user_id,
                                                               agent_id=await _scope(who, label)))
        return await kit.run(ctx, "core_memory_append", action)
    return core_memory_append


def core_memory_replace(kit: Toolkit):
    async def core_memory_replace(
        label: Label,
        old_content: Annotated[str, Field(description="The exact text to replace (every occurrence)", min_length=1,
                                          max_length=64_000)],
        new_content: Annotated[str, Field(description="The new text; an empty string deletes old_content",
                                          max_length=64_000)],
        ctx: Context = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Replace text in a core memory block (Letta's core_memory_replace).

        old_content must match the block exactly (read it first with core_memory_read); every
        occurrence is replaced. Use it to correct what changed, or with new_content "" to delete
        a line and make room."""
        async def action(who: Caller):
            return _edited(await who.client.core_memory_replace(label, old_content, new_content, user_id=who.user_id,
                                                                agent_id=await _scope(who, label)))
        return await kit.run(ctx, "core_memory_replace", action)
    return core_memory_replace
