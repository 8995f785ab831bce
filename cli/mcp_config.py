"""The MCP clients' configuration files: where each client keeps them, the entry that
connects it to recallstack, and how that entry is merged into what is there.

Pure: paths are computed from a home, a project directory, a platform and an environment
given as arguments, and merging takes the file's text and returns the new text (no I/O),
so `recallstack mcp install` and `doctor` (cli/mcp_install.py, cli/mcp_doctor.py) and the
unit tests share one definition of every client's format:

| client         | scopes (default first)                | servers object      | transport |
| cursor         | user ~/.cursor/mcp.json, project      | mcpServers          | http      |
|                | .cursor/mcp.json                      |                     |           |
| claude-code    | user ~/.claude.json, local (the same  | mcpServers          | http      |
|                | file, under projects[dir]), project   |                     |           |
|                | .mcp.json                             |                     |           |
| claude-desktop | user claude_desktop_config.json       | mcpServers          | stdio     |
| vscode         | project .vscode/mcp.json, user        | servers             | http      |
|                | (Code/User/mcp.json)                  |                     |           |

HTTP where the client speaks streamable HTTP (no local process, nothing tied to this
checkout's path); stdio for Claude Desktop, whose config file takes local servers only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

CLIENTS = ("cursor", "claude-code", "claude-desktop", "vscode")
SCOPES = {"cursor": ("user", "project"), "claude-code": ("user", "local", "project"),
          "claude-desktop": ("user",), "vscode": ("project", "user")}
BEST_TRANSPORT = {"cursor": "http", "claude-code": "http", "claude-desktop": "stdio", "vscode": "http"}
TRANSPORTS = {"cursor": ("http", "stdio"), "claude-code": ("http", "stdio"), "claude-desktop": ("stdio",),
              "vscode": ("http", "stdio")}
SERVER_NAME = "recallstack"


class ConfigRefused(ValueError):
    """An existing file that cannot be merged safely (not JSON, or not the client's shape):
    said, and the file left as it is."""


@dataclass(frozen=True)
class Target:
    """One client's configuration file and where in it the MCP servers are."""

    client: str
    scope: str
    path: Path
    servers_at: tuple[str, ...]  # keys from the document's root to the servers object

    def describe(self) -> str:
        inside = " > ".join(self.servers_at)
        return f"{self.path} ({inside})"


@dataclass(frozen=True)
class Connection:
    """What an entry says: how to reach recallstack and as whom."""

    base_url: str
    api_key: str | None  # None: the no-auth mode
    user_id: str
    agent_id: str
    command: tuple[str, ...] = ("recallstack",)  # stdio: the executable (and its leading arguments)


def _app_data(home: Path, platform: str, env: Mapping[str, str]) -> Path:
    """Where desktop apps keep their settings: ~/Library/Application Support, %APPDATA%, or
    $XDG_CONFIG_HOME (default ~/.config)."""
    if platform == "darwin":
        return home / "Library" / "Application Support"
    if platform.startswith("win"):
        return Path(env["APPDATA"]) if env.get("APPDATA") else home / "AppData" / "Roaming"
    return Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"


def target(client: str, scope: str | None = None, *, home: Path, project: Path, platform: str,
           env: Mapping[str, str]) -> Target:
    """The file `client` reads at `scope` (default: the first of SCOPES[client])."""
    if client not in SCOPES:
        raise ValueError(f"unknown client {client!r}: one of {', '.join(CLIENTS)}")
    scope = scope or SCOPES[client][0]
    if scope not in SCOPES[client]:
        raise ValueError(f"{client} has no {scope!r} scope: one of {', '.join(SCOPES[client])}")
    servers = ("mcpServers",)
    if client == "cursor":
        path = (home if scope == "user" else project) / ".cursor" / "mcp.json"
    elif client == "claude-code":
        path = project / ".mcp.json" if scope == "project" else home / ".claude.json"
        if scope == "local":  # Claude Code keeps a project's private servers under its absolute path
            servers = ("projects", str(project), "mcpServers")
    elif client == "claude-desktop":
        path = _app_data(home, platform, env) / "Claude" / "claude_desktop_config.json"
    else:
        path = (project / ".vscode" / "mcp.json" if scope == "project"
                else _app_data(home, platform, env) / "Code" / "User" / "mcp.json")
        servers = ("servers",)
    return Target(client, scope, path, servers)


def entry(client: str, transport: str, connection: Connection) -> dict[str, Any]:
    """The server entry in the client's own shape: over HTTP, the /mcp URL of the base URL
    with the key and scope as headers; over stdio, `recallstack mcp` with them as environment."""
    if transport not in TRANSPORTS[client]:
        raise ValueError(f"{client} takes {' or '.join(TRANSPORTS[client])}, not {transport}")
    typed = client in ("claude-code", "vscode")  # these two name the transport in a `type` field
    if transport == "http":
        headers = {**({"Authorization": f"Bearer {connection.api_key}"} if connection.api_key else {}),
                   "X-Recallstack-User-Id": connection.user_id, "X-Recallstack-Agent-Id": connection.agent_id}
        return {**({"type": "http"} if typed else {}), "url": f"{connection.base_url.rstrip('/')}/mcp",
                "headers": headers}
    env = {"RECALLSTACK_URL": connection.base_url.rstrip("/"),
           **({"RECALLSTACK_API_KEY": connection.api_key} if connection.api_key else {}),
           "RECALLSTACK_MCP_USER_ID": connection.user_id, "RECALLSTACK_MCP_AGENT_ID": connection.agent_id}
    command, *leading = connection.command
    return {**({"type": "stdio"} if typed else {}), "command": command, "args": [*leading, "mcp"], "env": env}


def _parse(text: str | None) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigRefused(f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); comments and "
                            "trailing commas are not read either") from None
    if not isinstance(document, dict):
        raise ConfigRefused(f"the document is a JSON {type(document).__name__}, not an object")
    return document


def _servers(document: dict[str, Any], servers_at: tuple[str, ...], create: bool) -> dict[str, Any] | None:
    node = document
    for depth, key in enumerate(servers_at):
        child = node.get(key)
        if child is None:
            if not create:
                return None
            child = node[key] = {}
        if not isinstance(child, dict):
            where = " > ".join(servers_at[:depth + 1])
            raise ConfigRefused(f"{where!r} is a JSON {type(child).__name__}, not an object")
        node = child
    return node


def _indent(text: str | None) -> str | int:
    """The file's own indentation (its first indented line), else two spaces."""
    for line in (text or "").splitlines()[1:]:
        stripped = line.lstrip(" \t")
        if stripped and stripped != line:
            return line[: len(line) - len(stripped)]
    return 2


def merge(text: str | None, servers_at: tuple[str, ...], name: str, server: dict[str, Any]) -> tuple[str, bool]:
    """(the file's new text, whether an entry `name` was replaced): `server` put under
    `name` in the servers object at `servers_at`, everything else kept as it was (other
    servers, other settings, key order). Raises ConfigRefused on a file it cannot read."""
    document = _parse(text)
    servers = _servers(document, servers_at, create=True)
    assert servers is not None
    replaced = name in servers
    servers[name] = server
    return json.dumps(document, indent=_indent(text), ensure_ascii=False) + "\n", replaced


def find(text: str | None, servers_at: tuple[str, ...], name: str) -> dict[str, Any] | None:
    """The entry `name` of a file's servers object, or None. Raises ConfigRefused like merge."""
    servers = _servers(_parse(text), servers_at, create=False)
    found = (servers or {}).get(name)
    if found is not None and not isinstance(found, dict):
        raise ConfigRefused(f"the entry {name!r} is a JSON {type(found).__name__}, not an object")
    return found


def backup_name(path: Path, now: datetime) -> Path:
    """Where the old file is kept: beside it, named with the time (UTC) of the change."""
    return path.with_name(f"{path.name}.bak-{now:%Y%m%dT%H%M%SZ}")
