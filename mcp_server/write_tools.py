"""The MCP tools that change memories: add_memories, update_memory, delete_memory,
delete_all_memories. Writes are tagged with the caller's user, agent and app; the SDK
client sends each with an idempotency key and keeps its consistency token, so the
caller's next read sees it.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from mcp_server.toolkit import ID_SCHEMA_PATTERN, Caller, MemoryId, Toolkit

EXPIRES_AT = ("Optional: when this stops being true, ISO 8601 (e.g. 2030-01-31T18:00:00Z; naive is UTC); "
              "it is no longer recalled from then on. Not with ttl_seconds")
TTL = "Optional: the same as expires_at, in seconds from now (e.g. 604800 for a week)"
ADDING = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
CHANGING = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)


def register(kit: Toolkit) -> None:
    kit.add(add_memories(kit), ADDING)
    for factory in (update_memory, delete_memory, delete_all_memories):
        kit.add(factory(kit), CHANGING)


def add_memories(kit: Toolkit):
    async def add_memories(
        text: Annotated[str, Field(description="The memory to store: one self-contained fact, preference or "
                                               "decision, written to make sense on its own later (e.g. 'The user "
                                               "deploys with make release, never by hand').",
                                   min_length=1, max_length=32_000)],
        categories: Annotated[list[str] | None, Field(description="Optional tags, e.g. ['preferences', 'project']",
                                                      max_length=32)] = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Optional JSON object stored with the memory "
                                                                     "(e.g. {\"repo\": \"recallstack\"})")] = None,
        occurred_at: Annotated[str | None, Field(description="When the remembered thing happened, ISO 8601 "
                                                             "(default: now)")] = None,
        run_id: Annotated[str | None, Field(description="Optional session/run id to group memories of one task",
                                            pattern=ID_SCHEMA_PATTERN)] = None,
        expires_at: Annotated[str | None, Field(description=EXPIRES_AT)] = None,
        ttl_seconds: Annotated[int | None, Field(description=TTL, ge=1)] = None,
        ctx: Context = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Store a new long-term memory for the user.

        Call this when you learn something worth remembering beyond this conversation: a user
        preference, a decision and its reason, a fact about the user, their project, tools or
        environment, or a correction. Store one self-contained fact per call; do not store
        secrets or transient chatter. If a stored memory became wrong, prefer update_memory.
        Something true only for a while (a sprint goal, who is on call this week, a temporary
        workaround) gets expires_at or ttl_seconds: it stops being recalled from then on.
        Returns the new memory's id; it is searchable immediately.
        """
        async def action(who: Caller):
            result = await who.client.add(text, user_id=who.user_id, agent_id=who.agent_id, app_id=who.app_id,
                                          run_id=run_id, categories=categories, metadata=metadata,
                                          occurred_at=occurred_at, infer=False, expires_at=expires_at,
                                          ttl_seconds=ttl_seconds)
            return {"stored": [{"id": e.id, "memory": e.memory} for e in result.results], "user_id": who.user_id}
        return await kit.run(ctx, "add_memories", action)
    return add_memories


def update_memory(kit: Toolkit):
    async def update_memory(
        memory_id: MemoryId,
        text: Annotated[str | None, Field(description="The corrected text (replaces the old text)", min_length=1,
                                          max_length=32_000)] = None,
        categories: Annotated[list[str] | None, Field(description="Replaces the categories", max_length=32)] = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Replaces the whole metadata object")] = None,
        expires_at: Annotated[str | None, Field(description=EXPIRES_AT)] = None,
        ttl_seconds: Annotated[int | None, Field(description=TTL, ge=1)] = None,
        never_expires: Annotated[bool, Field(description="true: clear the memory's expiry (it stays true)")] = False,
        ctx: Context = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Correct an existing memory: replace its text and/or its categories or metadata.

        Call this when a stored memory is outdated or wrong (the user changed their mind, a
        fact changed) instead of adding a contradicting memory. Give at least one of text,
        categories, metadata, expires_at, ttl_seconds, never_expires; what you omit stays. The
        change history is kept.
        """
        async def action(who: Caller):
            if (text is None and categories is None and metadata is None and expires_at is None
                    and ttl_seconds is None and not never_expires):
                raise ToolError("nothing to update: give text, categories, metadata or an expiry")
            if never_expires and (expires_at is not None or ttl_seconds is not None):
                raise ToolError("never_expires: not with expires_at or ttl_seconds")
            expiry = {"expires_at": None} if never_expires else {} if expires_at is None else {"expires_at": expires_at}
            result = await who.client.update(memory_id, text, user_id=who.user_id, categories=categories,
                                             metadata=metadata, ttl_seconds=ttl_seconds, **expiry)
            return {"id": result.ids[0] if result.ids else memory_id, "status": "updated"}
        return await kit.run(ctx, "update_memory", action)
    return update_memory


def delete_memory(kit: Toolkit):
    async def delete_memory(memory_id: MemoryId, ctx: Context = None) -> dict[str, Any]:  # type: ignore[assignment]
        """Delete one memory by id, when it is wrong, obsolete or the user asks to forget it.
        It stops appearing in searches at once (its history stays in the audit log)."""
        async def action(who: Caller):
            await who.client.delete(memory_id, user_id=who.user_id)
            return {"id": memory_id, "status": "deleted"}
        return await kit.run(ctx, "delete_memory", action)
    return delete_memory


def delete_all_memories(kit: Toolkit):
    async def delete_all_memories(
        confirm: Annotated[bool, Field(description="Must be true: this deletes every memory of the scope")],
        agent_id: Annotated[str | None, Field(description="Only the memories written by this agent",
                                              pattern=ID_SCHEMA_PATTERN)] = None,
        run_id: Annotated[str | None, Field(description="Only the memories of this session/run",
                                            pattern=ID_SCHEMA_PATTERN)] = None,
        ctx: Context = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Delete ALL of the user's memories (within the configured app), or only those of one
        agent_id or run_id. Irreversible for searches. Only call this when the user explicitly
        asks to forget everything (or everything of that agent/run), with confirm=true."""
        async def action(who: Caller):
            if confirm is not True:
                raise ToolError("refused: delete_all_memories needs confirm=true (and an explicit request from "
                                "the user)")
            result = await who.client.delete_all(user_id=who.user_id, app_id=who.app_id, agent_id=agent_id,
                                                 run_id=run_id)
            return {"status": "deleted", "scope": result.scope}
        return await kit.run(ctx, "delete_all_memories", action)
    return delete_all_memories
