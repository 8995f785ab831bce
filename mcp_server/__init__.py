"""The recallstack MCP server: memory tools for AI agents, over stdio (`recallstack mcp`)
and streamable HTTP (mounted at /mcp on the gateway). See mcp_server/server.py."""

from mcp_server.server import McpConfig, build_server, run_stdio

__all__ = ["McpConfig", "build_server", "run_stdio"]
