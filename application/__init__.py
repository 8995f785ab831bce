"""The use cases, shared by the APIs, the CLI, the MCP server and the workers: each takes a
command (or query) and the ports it needs, and knows nothing of HTTP or of how the ports are
built (bootstrap.py wires them)."""
