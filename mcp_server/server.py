"""The recallstack MCP server (official `mcp` SDK): memory tools for AI agents.

Tools (one module per group): read_tools (search_memory, list_memories, get_memory,
get_context), write_tools (add_memories, update_memory, delete_memory, delete_all_memories)
and graph_tool (search_graph). Each talks to the REST API through the SDK's AsyncClient (the
`recallstack` package), the one place for retries, idempotency keys and read-your-writes
tokens: an agent that stores a memory finds it on its next search. toolkit.py has what they
share: the caller of a request, the argument check and errors as tool results.

Identity:
- API key: the HTTP `Authorization: Bearer` header of the MCP request (streamable HTTP),
  else `RECALLSTACK_API_KEY`; passed on to the REST API, which decides what the tools see.
- user / agent / app: `RECALLSTACK_MCP_USER_ID` (default: the key's own user; with no key in
  the no-auth mode, the OS user name), `RECALLSTACK_MCP_AGENT_ID`, `RECALLSTACK_MCP_APP_ID`;
  over HTTP the headers `X-Recallstack-User-Id`, `X-Recallstack-Agent-Id`,
  `X-Recallstack-App-Id` override them per request. Writes are tagged with user, agent and
  app; reads see the user's memories (within the app when one is set) from every agent, so
  agents share what they learn.

The initialize result carries INSTRUCTIONS: how an agent should use the tools.

Errors never escape as crashes: bad arguments, unknown memories and a backend that is
down all come back as tool results with isError and a message saying what to do.

No argument can reach another endpoint than its tool's own: `memory_id` is declared a UUID
(a `pattern` in the published JSON schema, enforced before the tool runs), run and agent
ids match the API's id pattern, and the SDK checks both again and percent-encodes the one
path segment it builds. `delete_memory {"memory_id": "../../v1/memories"}` is a tool error
naming memory_id, never a delete-all without `confirm`.
"""

from __future__ import annotations

import getpass
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcp.server.mcpserver import MCPServer

from mcp_server import core_memory_tools, graph_tool, read_tools, write_tools
from mcp_server.toolkit import Toolkit
from recallstack import AsyncClient

if TYPE_CHECKING:
    from settings import Settings

# What an agent is told at initialize (short: clients put it in the model's context).
INSTRUCTIONS = """\
recallstack is your long-term memory across sessions, shared by the user's agents.
- Search before you answer: at the start of a task, or when the user refers to something
  from before, call get_context (a ready-to-use block) or search_memory; for a person,
  project or thing and what it relates to, search_graph.
- Add when you learn something durable (a preference, a decision and its reason, a fact
  about the user, their project or environment, a correction): add_memories, one
  self-contained fact per call. Never store secrets.
- When a memory is wrong or outdated, update_memory or delete_memory it rather than adding
  a contradicting one.
- Core memory: a few small named blocks (persona, human, project...) always first in
  get_context; keep what must always be in view there with core_memory_append and
  core_memory_replace (each block has a size limit), and read them with core_memory_read.
- User ids: every tool acts for the user this connection is set up for (its API key's
  user); you never pass a user id, and you only ever see that user's memories.
- Consistency: this server carries the consistency token of your writes, so your next
  search already sees what you stored; other agents see it a moment later."""


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
        """From the RECALLSTACK_* settings (Settings.from_env): RECALLSTACK_URL (default: this
        machine's base URL), RECALLSTACK_API_KEY, RECALLSTACK_MCP_USER_ID, _AGENT_ID, _APP_ID."""
        from settings import Settings

        return cls.from_settings(Settings.from_env(), base_url)

    @classmethod
    def from_settings(cls, cfg: Settings, base_url: str | None = None) -> "McpConfig":
        try:
            default_user = getpass.getuser()
        except Exception:  # no name for this uid (containers)
            default_user = "default"
        return cls(base_url=base_url or cfg.client_url or cfg.gateway_url, api_key=cfg.api_key or None,
                   user_id=cfg.mcp_user_id or None, agent_id=cfg.mcp_agent_id or None,
                   app_id=cfg.mcp_app_id or None, fallback_user=default_user)


def build_server(config: McpConfig | None = None, *, client: AsyncClient | None = None,
                 log_level: str = "WARNING") -> MCPServer:
    """The MCP server. It opens (and closes) its own AsyncClient unless one is given."""
    config = config or McpConfig.from_env()
    kit: Toolkit

    @asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[dict]:
        if client is None:
            kit.client = kit.open_client()
        try:
            yield {}
        finally:
            if client is None and kit.client is not None:
                await kit.client.aclose()
                kit.client = None

    server = MCPServer("recallstack", title="recallstack memory", instructions=INSTRUCTIONS, version="0.1.0",
                       lifespan=lifespan, log_level=log_level)  # type: ignore[arg-type]
    kit = Toolkit(server, config, client)
    for group in (write_tools, read_tools, graph_tool, core_memory_tools):
        group.register(kit)
    return server


def run_stdio(config: McpConfig | None = None) -> None:
    """Serve MCP on stdin/stdout until the client closes the pipe (`recallstack mcp`)."""
    build_server(config).run("stdio")
