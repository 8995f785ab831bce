"""The recallstack MCP server (official `mcp` SDK): memory tools for AI agents.

Tools: add_memories, search_memory, list_memories, get_memory, update_memory,
delete_memory, delete_all_memories, get_context. Each talks to the REST API through the
SDK's AsyncClient (recallstack/), the one place for retries, idempotency keys and
read-your-writes tokens: an agent that stores a memory finds it on its next search.

Identity (until API keys land, the user id is the principal):
- API key: the HTTP `Authorization: Bearer` header of the MCP request (streamable HTTP),
  else `RECALLSTACK_API_KEY`; passed on to the REST API.
- user / agent / app: `RECALLSTACK_MCP_USER_ID` (default: the OS user name),
  `RECALLSTACK_MCP_AGENT_ID`, `RECALLSTACK_MCP_APP_ID`; over HTTP the headers
  `X-Recallstack-User-Id`, `X-Recallstack-Agent-Id`, `X-Recallstack-App-Id` override them
  per connection. Writes are tagged with user, agent and app; reads see the user's
  memories (within the app when one is set) from every agent, so agents share what they learn.

Errors never escape as crashes: bad arguments, unknown memories and a backend that is
down all come back as tool results with isError and a message saying what to do.

No argument can reach another endpoint than its tool's own: `memory_id` is declared a UUID
(a `pattern` in the published JSON schema, enforced before the tool runs), run and agent
ids match the API's id pattern, and the SDK checks both again and percent-encodes the one
path segment it builds. `delete_memory {"memory_id": "../../v1/memories"}` is a tool error
naming memory_id, never a delete-all without `confirm`.
"""

import getpass
import inspect
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from recallstack import AsyncClient, RetryPolicy
from recallstack.client import DEFAULT_URL, ENV_API_KEY, ENV_URL
from recallstack.errors import AuthenticationError, InvalidRequest, NotFound, RecallstackError, Unavailable
from recallstack.ids import ID_RE, UUID_RE

log = logging.getLogger(__name__)
T = TypeVar("T")

INSTRUCTIONS = """\
recallstack is your long-term memory across sessions, shared by the user's agents.
- At the start of a task, or when the user refers to something from before, call
  get_context (a ready-to-use block) or search_memory with what you need to know.
- When you learn something durable (a preference, a decision, a fact about the user,
  their project or environment, a correction), store it with add_memories: one
  self-contained fact per call, written so it makes sense on its own later.
- When a memory turns out to be wrong or outdated, fix it with update_memory or remove it
  with delete_memory rather than adding a contradicting one.
Memories you store are searchable immediately."""

# The HTTP headers that name the caller's scope on the streamable HTTP transport.
SCOPE_HEADERS = {"user_id": "x-recallstack-user-id", "agent_id": "x-recallstack-agent-id",
                 "app_id": "x-recallstack-app-id"}
# JSON Schema patterns (published with the tools, checked by pydantic before a tool runs).
UUID_SCHEMA_PATTERN = f"^{UUID_RE.pattern}$"
ID_SCHEMA_PATTERN = f"^{ID_RE.pattern}$"
# Agents should not wait long: a few retries within 20 s, then a tool error they can act on.
MCP_RETRY = RetryPolicy(max_attempts=6, base_delay=0.2, max_delay=2.0, total_timeout=20.0)


@dataclass(frozen=True)
class McpConfig:
    base_url: str
    api_key: str | None
    user_id: str | None  # None: the API key's own user
    agent_id: str | None = None
    app_id: str | None = None
    fallback_user: str = "default"  # the OS user: only when no user and no API key is given (no-auth mode)

    @classmethod
    def from_env(cls, base_url: str | None = None) -> "McpConfig":
        try:
            default_user = getpass.getuser()
        except Exception:  # no name for this uid (containers)
            default_user = "default"
        return cls(base_url=base_url or os.environ.get(ENV_URL) or DEFAULT_URL,
                   api_key=os.environ.get(ENV_API_KEY) or None,
                   user_id=os.environ.get("RECALLSTACK_MCP_USER_ID") or None,
                   agent_id=os.environ.get("RECALLSTACK_MCP_AGENT_ID") or None,
                   app_id=os.environ.get("RECALLSTACK_MCP_APP_ID") or None, fallback_user=default_user)


@dataclass(frozen=True)
class Caller:
    user_id: str | None  # None: the API key's user
    agent_id: str | None
    app_id: str | None
    client: AsyncClient


def _compact(memory: dict[str, Any]) -> dict[str, Any]:
    """What an agent needs of a memory, without the bookkeeping (kept small: it lands in a prompt)."""
    keys = ("id", "memory", "score", "categories", "metadata", "occurred_at", "created_at", "updated_at",
            "agent_id", "app_id", "run_id", "shared")
    return {k: memory[k] for k in keys if memory.get(k) not in (None, [], {})}


def _tool_error(exc: RecallstackError, base_url: str) -> ToolError:
    if isinstance(exc, NotFound):
        return ToolError(f"not found: {exc.message}. It may have been deleted, or belong to another user; "
                         "use search_memory or list_memories to find the right id.")
    if isinstance(exc, InvalidRequest):
        field = exc.details.get("field") or next((e.get("field") for e in exc.details.get("errors", [])), None)
        return ToolError(f"invalid request{f' ({field})' if field else ''}: {exc.message}")
    if isinstance(exc, AuthenticationError):
        return ToolError(f"not authorised by recallstack ({exc.status}): {exc.message}. Check the API key "
                         f"(RECALLSTACK_API_KEY, or the Authorization header).")
    if isinstance(exc, Unavailable):
        return ToolError(f"recallstack at {base_url} is unavailable right now: {exc.message}. Nothing was changed "
                         "by this call unless it says otherwise; try again in a little while.")
    return ToolError(f"recallstack answered {exc.status} {exc.code}: {exc.message}")


def build_server(config: McpConfig | None = None, *, client: AsyncClient | None = None,
                 log_level: str = "WARNING") -> MCPServer:
    """The MCP server. It creates (and closes) its own AsyncClient unless one is given."""
    config = config or McpConfig.from_env()
    shared: dict[str, AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[dict]:
        own = client is None
        shared["client"] = client or AsyncClient(config.base_url, config.api_key, retry=MCP_RETRY, timeout=15.0)
        try:
            yield {}
        finally:
            if own:
                await shared.pop("client").aclose()

    server = MCPServer("recallstack", title="recallstack memory", instructions=INSTRUCTIONS, version="0.1.0",
                       lifespan=lifespan, log_level=log_level)  # type: ignore[arg-type]
    parameters: dict[str, set[str]] = {}

    def caller(ctx: Context) -> Caller:
        request = ctx.request_context.request if ctx is not None else None
        headers = getattr(request, "headers", None) or {}
        scope = {name: headers.get(header) or getattr(config, name) for name, header in SCOPE_HEADERS.items()}
        base = shared.get("client")
        if base is None:  # used outside the lifespan (should not happen): a short-lived client
            base = shared["client"] = AsyncClient(config.base_url, config.api_key, retry=MCP_RETRY, timeout=15.0)
        authorization = headers.get("authorization", "")
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() == "bearer" and key.strip():
            base = base.with_options(api_key=key.strip())
        # With a key and no user named, the key's own user (a key acts only for it unless admin).
        user_id = scope["user_id"] or (None if base.api_key else config.fallback_user)
        return Caller(user_id, scope["agent_id"], scope["app_id"], base)

    async def run(ctx: Context, tool: str, action: Callable[[Caller], Awaitable[T]]) -> T:
        try:
            arguments = (ctx.request_context.params or {}).get("arguments") or {}
            unknown = sorted(set(arguments) - parameters[tool])
            if unknown:
                raise ToolError(f"unknown argument(s) {', '.join(unknown)}; {tool} takes "
                                f"{', '.join(sorted(parameters[tool]))}")
            return await action(caller(ctx))
        except ToolError:
            raise
        except RecallstackError as exc:
            raise _tool_error(exc, config.base_url) from None
        except Exception as exc:  # a bug of ours must not take the server down: report it
            log.exception("tool %s failed", tool)
            raise ToolError(f"internal error in {tool}: {type(exc).__name__}: {exc}") from None

    def tool(annotations: ToolAnnotations):
        def register(fn):
            parameters[fn.__name__] = {name for name, p in inspect.signature(fn).parameters.items() if name != "ctx"}
            server.add_tool(fn, name=fn.__name__, description=inspect.cleandoc(fn.__doc__ or ""),
                            annotations=annotations)
            return fn
        return register

    reading = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    Filters = Annotated[dict[str, Any] | None, Field(
        description="Optional filter in mem0's v2 shape: {field: value} or {field: {op: value}}, combined with "
                    "AND / OR lists and NOT. Fields: agent_id, run_id, app_id, categories, created_at, updated_at, "
                    "occurred_at, importance, memory_id, metadata: {key: value}. Ops: eq ne in nin gt gte lt lte "
                    "contains exists. Example: {\"AND\": [{\"categories\": {\"contains\": \"preferences\"}}, "
                    "{\"occurred_at\": {\"gte\": \"2024-06-01\"}}]}")]
    MemoryId = Annotated[str, Field(description="The memory's id (a UUID) from search_memory, list_memories or "
                                                "add_memories", pattern=UUID_SCHEMA_PATTERN)]

    @tool(ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False))
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
        ctx: Context = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Store a new long-term memory for the user.

        Call this when you learn something worth remembering beyond this conversation: a user
        preference, a decision and its reason, a fact about the user, their project, tools or
        environment, or a correction. Store one self-contained fact per call; do not store
        secrets or transient chatter. If a stored memory became wrong, prefer update_memory.
        Returns the new memory's id; it is searchable immediately.
        """
        async def action(who: Caller):
            result = await who.client.add(text, user_id=who.user_id, agent_id=who.agent_id, app_id=who.app_id,
                                          run_id=run_id, categories=categories, metadata=metadata,
                                          occurred_at=occurred_at, infer=False)
            return {"stored": [{"id": e.id, "memory": e.memory} for e in result.results], "user_id": who.user_id}
        return await run(ctx, "add_memories", action)

    @tool(reading)
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
        ctx: Context = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Search the user's long-term memories by meaning, keywords, names and time.

        Call this before answering whenever earlier context could matter: the user's
        preferences, past decisions, facts about their project, or anything they refer to
        ("like last time", "as I said"). Returns the most relevant memories, best first, each
        with its id, text, score (0-1), categories, metadata and when it happened.
        """
        async def action(who: Caller):
            found = await who.client.search(query, user_id=who.user_id, app_id=who.app_id, filters=filters,
                                            limit=limit, threshold=threshold,
                                            **({"include_shared": True} if include_shared else {}))
            answer: dict[str, Any] = {"results": [_compact(m) for m in found.results]}
            if found.degraded:
                answer["degraded"] = found.degraded
            return answer
        return await run(ctx, "search_memory", action)

    @tool(reading)
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
            return {"results": [_compact(m) for m in listed.results], "page": listed.page, "total": listed.total,
                    "has_more": listed.has_more}
        return await run(ctx, "list_memories", action)

    @tool(reading)
    async def get_memory(memory_id: MemoryId, ctx: Context = None) -> dict[str, Any]:  # type: ignore[assignment]
        """Get one memory by id, with all its fields (text, metadata, categories, agent, times,
        access count). Use it to check a memory's details before updating or deleting it."""
        async def action(who: Caller):
            return dict(await who.client.get(memory_id, user_id=who.user_id))
        return await run(ctx, "get_memory", action)

    @tool(ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False))
    async def update_memory(
        memory_id: MemoryId,
        text: Annotated[str | None, Field(description="The corrected text (replaces the old text)", min_length=1,
                                          max_length=32_000)] = None,
        categories: Annotated[list[str] | None, Field(description="Replaces the categories", max_length=32)] = None,
        metadata: Annotated[dict[str, Any] | None, Field(description="Replaces the whole metadata object")] = None,
        ctx: Context = None,  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Correct an existing memory: replace its text and/or its categories or metadata.

        Call this when a stored memory is outdated or wrong (the user changed their mind, a
        fact changed) instead of adding a contradicting memory. Give at least one of text,
        categories, metadata; what you omit stays. The change history is kept.
        """
        async def action(who: Caller):
            if text is None and categories is None and metadata is None:
                raise ToolError("nothing to update: give text, categories or metadata")
            result = await who.client.update(memory_id, text, user_id=who.user_id, categories=categories,
                                             metadata=metadata)
            return {"id": result.ids[0] if result.ids else memory_id, "status": "updated"}
        return await run(ctx, "update_memory", action)

    @tool(ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False))
    async def delete_memory(memory_id: MemoryId, ctx: Context = None) -> dict[str, Any]:  # type: ignore[assignment]
        """Delete one memory by id, when it is wrong, obsolete or the user asks to forget it.
        It stops appearing in searches at once (its history stays in the audit log)."""
        async def action(who: Caller):
            await who.client.delete(memory_id, user_id=who.user_id)
            return {"id": memory_id, "status": "deleted"}
        return await run(ctx, "delete_memory", action)

    @tool(ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False))
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
        return await run(ctx, "delete_all_memories", action)

    @tool(reading)
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
        return await run(ctx, "get_context", action)

    return server


def run_stdio(config: McpConfig | None = None) -> None:
    """Serve MCP on stdin/stdout until the client closes the pipe (`recallstack mcp`)."""
    build_server(config).run("stdio")
