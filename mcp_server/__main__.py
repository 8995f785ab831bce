"""`python -m mcp_server`: the MCP server on stdio (the same as `recallstack mcp`)."""

from mcp_server.server import run_stdio

run_stdio()
