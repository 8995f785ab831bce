"""The MCP tools that read memories: search_memory, list_memories, get_memory, get_context,
get_user_profile.

Each is a factory taking the Toolkit and returning the tool function, whose annotated
parameters are the published JSON schema and whose docstring tells an agent when to call it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from pydantic import Field
from recallstack import InvalidRequest, NotFound

from mcp_server.toolkit import READING, Caller, Filters, MemoryId, Toolkit, compact


def register(kit: Toolkit) -> None:
    for factory in (search_memory, list_memories, get_memory, get_context, get_user_profile):
        kit.add(factory(kit), READING)


def search_memory(kit: Toolkit):
    async def search_memory(
        query: Annotated[str, Field(description="What you want to know, in natural language (e.g. 'which test "
                                                "command does the user prefer?'). Names and times help.",
                                    min_length=1, max_length=8_000)],
        limit: Annotated[int, Field(description="Maximum number of memories to return", ge=1, le=50)] = 10,
        filters: Filters = None,
        threshold: Annotated[float | None, Field(description="Optional minimum similarity (0-1) of a result to "
                                                             "the query; leave empty unless results are noisy",
                                                 ge=0.0, le=1.0)] = None,
        include_shared: Annotated[bool, Field(description="Also search memories other users shared with this "
                                                          "user (read-only; each says who shared it in `shared`)")]
        = False,
        as_of: Annotated[str | None, Field(description="Search the memories as they were at a past moment: an ISO "
                                                       "8601 time (e.g. '2026-05-01T14:00:00Z'); leave empty for now",
                                           max_length=4_096)] = None,
        rerank: Annotated[bool, Field(description="Reorder the best matches with the server's cross-encoder "
                                                  "(more precise, a little slower); a server without one "
                                                  "searches as usual and says so in `degraded`")] = False,
        ctx: Context = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Search the user's long-term memories by meaning, keywords, names and time.

        Call this before answering whenever earlier context could matter: the user's
        preferences, past decisions, facts about their project, or anything they refer to
        ("like last time", "as I said"). Returns the most relevant memories, best first, each
        with its id, text, score (0-1), categories, metadata and when it happened.
        """
        async def action(who: Caller):
            def search(reranked: bool):
                return who.client.search(query, user_id=who.user_id, app_id=who.app_id, filters=filters,
                                         limit=limit, threshold=threshold, as_of=as_of, rerank=reranked or None,
                                         **({"include_shared": True} if include_shared else {}))
            noted = []
            try:
                found = await search(rerank)
            except InvalidRequest as exc:  # an agent cannot know the server has no reranker: search as usual
                if exc.code != "rerank_not_configured":
                    raise
                found, noted = await search(False), [{"source": "rerank", "reason": exc.message}]
            answer: dict[str, Any] = {"results": [compact(m) for m in found.results]}
            if found.degraded or noted:
                answer["degraded"] = [*found.degraded, *noted]
            return answer
        return await kit.run(ctx, "search_memory", action)
    return search_memory


def list_memories(kit: Toolkit):
    async def list_memories(
        page: Annotated[int, Field(description="Page number, starting at 1", ge=1)] = 1,
        page_size: Annotated[int, Field(description="Memories per page", ge=1, le=100)] = 20,
        filters: Filters = None,
        sort: Annotated[Literal["created_at", "updated_at", "occurred_at", "importance"],
                        Field(description="Sort key")] = "created_at",
        order: Annotated[Literal["asc", "desc"], Field(description="Sort order")] = "desc",
        ctx: Context = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """List the user's memories page by page (newest first by default), without a query.

        Use this to browse or review what is stored (e.g. before cleaning up); to find
        something specific use search_memory instead. Returns the page's memories, the total
        count and whether more pages follow.
        """
        async def action(who: Caller):
            listed = await who.client.get_all(user_id=who.user_id, app_id=who.app_id, filters=filters, page=page,
                                              page_size=page_size, sort=sort, order=order)
            return {"results": [compact(m) for m in listed.results], "page": listed.page, "total": listed.total,
                    "has_more": listed.has_more}
        return await kit.run(ctx, "list_memories", action)
    return list_memories


def get_memory(kit: Toolkit):
    async def get_memory(memory_id: MemoryId, ctx: Context = None) -> dict[str, Any]:  # type: ignore[assignment]
        """Get one memory by id, with all its fields (text, metadata, categories, agent, times,
        access count). Use it to check a memory's details before updating or deleting it."""
        async def action(who: Caller):
            return dict(await who.client.get(memory_id, user_id=who.user_id))
        return await kit.run(ctx, "get_memory", action)
    return get_memory


def get_context(kit: Toolkit):
    async def get_context(
        query: Annotated[str, Field(description="The task or question at hand; memories relevant to it are "
                                                "chosen", min_length=1, max_length=8_000)],
        max_tokens: Annotated[int, Field(description="Budget of the block in tokens (cl100k_base)", ge=16,
                                         le=32_000)] = 1000,
        filters: Filters = None,
        ctx: Context = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Get a ready-to-use block of the user's memories most relevant to a task, within a token
        budget, to read before you start working or answering.

        Call this at the start of a task or conversation. Returns `context` (a text block,
        most relevant first, each line dated), the tokens it costs, and the ids of the
        memories in it.
        """
        async def action(who: Caller):
            block = await who.client.get_context(query, user_id=who.user_id, app_id=who.app_id,
                                                 max_tokens=max_tokens, filters=filters)
            answer: dict[str, Any] = {"context": block.context, "tokens": block.tokens,
                                      "memory_ids": [m.id for m in block.memories]}
            if block.degraded:
                answer["degraded"] = block.degraded
            return answer
        return await kit.run(ctx, "get_context", action)
    return get_context


def get_user_profile(kit: Toolkit):
    async def get_user_profile(ctx: Context = None) -> dict[str, Any]:  # type: ignore[assignment]
        """Get who the user is, in one call: their profile, drawn from all their memories, in
        sections (preferences, facts about them, projects, tools, people, instructions on how
        to work with them), each item with the ids of the memories it came from.

        Call this at the start of a conversation with a user, to know them without searching;
        search_memory or get_context still find what the profile leaves out. Returns
        `profile`, its `version` and `updated_at`, and `stale` (true when memories changed
        since it was built: it is refreshed in the background).
        """
        async def action(who: Caller):
            try:
                found = await who.client.profile(who.user_id)
            except NotFound:
                return {"user_id": who.user_id, "version": None, "profile": {},
                        "note": "no profile yet: this user has no memories"}
            return {k: found.get(k) for k in ("user_id", "version", "updated_at", "stale", "profile")}
        return await kit.run(ctx, "get_user_profile", action)
    return get_user_profile
