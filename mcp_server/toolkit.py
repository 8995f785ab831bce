"""How every MCP tool runs: who is calling, what it may pass, and how a failure reads.

A tool's body is one action on a `Caller` (user, agent, app and an SDK client holding the
API key). The Toolkit builds that Caller from the connection's config and, over HTTP, its
headers; refuses unknown arguments by name; and turns every failure into a tool error
(isError) with a message an agent can act on, so the server never crashes on bad input or a
backend that is down. The tool groups (read_tools, write_tools, graph_tool) register through it.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from mcp_server import rest_extras
from recallstack import AsyncClient, RetryPolicy
from recallstack.errors import AuthenticationError, InvalidRequest, NotFound, RecallstackError, Unavailable
from recallstack.ids import ID_RE, UUID_RE

if TYPE_CHECKING:
    from mcp_server.server import McpConfig

log = logging.getLogger(__name__)
T = TypeVar("T")

# The HTTP headers that name the caller's scope on the streamable HTTP transport.
SCOPE_HEADERS = {"user_id": "x-recallstack-user-id", "agent_id": "x-recallstack-agent-id",
                 "app_id": "x-recallstack-app-id"}
# JSON Schema patterns (published with the tools, checked by pydantic before a tool runs).
UUID_SCHEMA_PATTERN = f"^{UUID_RE.pattern}$"
ID_SCHEMA_PATTERN = f"^{ID_RE.pattern}$"
# Agents should not wait long: a few retries within 20 s, then a tool error they can act on.
MCP_RETRY = RetryPolicy(max_attempts=6, base_delay=0.2, max_delay=2.0, total_timeout=20.0)
# A key's own user, looked up once per key (GET /v1/me): bounded, a server sees few keys.
MAX_KNOWN_KEYS = 1_000

READING = ToolAnnotations(read_only_hint=True, open_world_hint=False)
Filters = Annotated[dict[str, Any] | None, Field(
    description="Optional filter in mem0's v2 shape: {field: value} or {field: {op: value}}, combined with "
                "AND / OR lists and NOT. Fields: agent_id, run_id, app_id, categories, created_at, updated_at, "
                "occurred_at, importance, memory_id, metadata: {key: value}. Ops: eq ne in nin gt gte lt lte "
                "contains exists. Example: {\"AND\": [{\"categories\": {\"contains\": \"preferences\"}}, "
                "{\"occurred_at\": {\"gte\": \"2024-06-01\"}}]}")]
MemoryId = Annotated[str, Field(description="The memory's id (a UUID) from search_memory, list_memories or "
                                            "add_memories", pattern=UUID_SCHEMA_PATTERN)]


@dataclass(frozen=True)
class Caller:
    user_id: str  # named, the key's own, or (no key, the no-auth mode) the OS user
    agent_id: str | None
    app_id: str | None
    client: AsyncClient


def compact(memory: dict[str, Any]) -> dict[str, Any]:
    """What an agent needs of a memory, without the bookkeeping (kept small: it lands in a prompt)."""
    keys = ("id", "memory", "score", "rerank_score", "categories", "metadata", "occurred_at", "created_at", "updated_at",
            "agent_id", "app_id", "run_id", "shared", "expires_at")
    return {k: memory[k] for k in keys if memory.get(k) not in (None, [], {})}


def tool_error(exc: RecallstackError, base_url: str) -> ToolError:
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


class Toolkit:
    """The server's tools' shared machinery: the SDK client (opened by the server's lifespan,
    or given), the caller of a request, and the registration and running of tools."""

    def __init__(self, server: MCPServer, config: McpConfig, client: AsyncClient | None = None):
        self.server = server
        self.config = config
        self.client = client
        self.parameters: dict[str, set[str]] = {}
        self._key_users: dict[str, str] = {}

    def open_client(self) -> AsyncClient:
        return AsyncClient(self.config.base_url, self.config.api_key, retry=MCP_RETRY, timeout=15.0)

    async def caller(self, ctx: Context | None) -> Caller:
        request = ctx.request_context.request if ctx is not None else None
        headers = getattr(request, "headers", None) or {}
        scope = {name: headers.get(header) or getattr(self.config, name) for name, header in SCOPE_HEADERS.items()}
        if self.client is None:  # used outside the lifespan (should not happen): a client of its own
            self.client = self.open_client()
        base = self.client
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and key.strip():
            base = base.with_options(api_key=key.strip())
        user_id = scope["user_id"] or (await self._key_user(base) if base.api_key else self.config.fallback_user)
        return Caller(user_id, scope["agent_id"], scope["app_id"], base)

    async def _key_user(self, client: AsyncClient) -> str:
        """The key's own user, named on every call so the client's read-your-writes tokens
        (kept per user) apply: a memory an agent stores is found by its next search."""
        key = client.api_key or ""
        if key not in self._key_users:
            if len(self._key_users) >= MAX_KNOWN_KEYS:
                self._key_users.clear()
            self._key_users[key] = await rest_extras.key_user(client)
        return self._key_users[key]

    async def run(self, ctx: Context, tool: str, action: Callable[[Caller], Awaitable[T]]) -> T:
        try:
            arguments = (ctx.request_context.params or {}).get("arguments") or {}
            unknown = sorted(set(arguments) - self.parameters[tool])
            if unknown:
                raise ToolError(f"unknown argument(s) {', '.join(unknown)}; {tool} takes "
                                f"{', '.join(sorted(self.parameters[tool]))}")
            return await action(await self.caller(ctx))
        except ToolError:
            raise
        except RecallstackError as exc:
            raise tool_error(exc, self.config.base_url) from None
        except Exception as exc:  # a bug of ours must not take the server down: report it
            log.exception("tool %s failed", tool)
            raise ToolError(f"internal error in {tool}: {type(exc).__name__}: {exc}") from None

    def add(self, fn: Callable[..., Awaitable[Any]], annotations: ToolAnnotations) -> None:
        """Publish `fn` as a tool named after it, its docstring the description, its
        annotated parameters (but ctx) the JSON schema."""
        self.parameters[fn.__name__] = {name for name in inspect.signature(fn).parameters if name != "ctx"}
        self.server.add_tool(fn, name=fn.__name__, description=inspect.cleandoc(fn.__doc__ or ""),
                             annotations=annotations)
