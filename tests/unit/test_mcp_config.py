"""`recallstack mcp install`'s configuration files (issue 25 item 5): each client's file and
entry, merging (file text in, file text out: other servers and settings kept, ours replaced),
refusing what cannot be merged safely, and the backup and atomic write of cli/mcp_install.py
(in a temporary directory)."""

from __future__ import annotations

import json
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cli import mcp_install
from cli.mcp_config import (BEST_TRANSPORT, CLIENTS, ConfigRefused, Connection, Target, backup_name, entry, find,
                            merge, target)

HOME, PROJECT = Path("/home/ada"), Path("/home/ada/src/app")
CONNECTION = Connection("http://127.0.0.1:8080/", "rsk_secret", "ada", "cursor", ("/opt/rs/bin/recallstack",))


def where(client, scope=None, platform="linux", env=None):
    return target(client, scope, home=HOME, project=PROJECT, platform=platform, env=env or {})


@pytest.mark.parametrize("client, scope, platform, env, path, servers_at", [
    ("cursor", None, "linux", {}, HOME / ".cursor/mcp.json", ("mcpServers",)),
    ("cursor", "project", "linux", {}, PROJECT / ".cursor/mcp.json", ("mcpServers",)),
    ("claude-code", None, "linux", {}, HOME / ".claude.json", ("mcpServers",)),
    ("claude-code", "local", "linux", {}, HOME / ".claude.json", ("projects", str(PROJECT), "mcpServers")),
    ("claude-code", "project", "linux", {}, PROJECT / ".mcp.json", ("mcpServers",)),
    ("claude-desktop", None, "linux", {}, HOME / ".config/Claude/claude_desktop_config.json", ("mcpServers",)),
    ("claude-desktop", None, "linux", {"XDG_CONFIG_HOME": "/xdg"}, Path("/xdg/Claude/claude_desktop_config.json"),
     ("mcpServers",)),
    ("claude-desktop", None, "darwin", {}, HOME / "Library/Application Support/Claude/claude_desktop_config.json",
     ("mcpServers",)),
    ("claude-desktop", None, "win32", {"APPDATA": "/appdata"}, Path("/appdata/Claude/claude_desktop_config.json"),
     ("mcpServers",)),
    ("vscode", None, "linux", {}, PROJECT / ".vscode/mcp.json", ("servers",)),
    ("vscode", "user", "linux", {}, HOME / ".config/Code/User/mcp.json", ("servers",)),
    ("vscode", "user", "darwin", {}, HOME / "Library/Application Support/Code/User/mcp.json", ("servers",)),
])
def test_each_client_has_its_file(client, scope, platform, env, path, servers_at):
    found = where(client, scope, platform, env)
    assert (found.path, found.servers_at) == (path, servers_at)


def test_a_scope_or_transport_a_client_lacks_is_refused():
    with pytest.raises(ValueError, match="claude-desktop has no 'project' scope"):
        where("claude-desktop", "project")
    with pytest.raises(ValueError, match="claude-desktop takes stdio, not http"):
        entry("claude-desktop", "http", CONNECTION)
    with pytest.raises(ValueError, match="unknown client"):
        where("emacs")


def test_entries_in_each_clients_shape():
    headers = {"Authorization": "Bearer rsk_secret", "X-Recallstack-User-Id": "ada", "X-Recallstack-Agent-Id": "cursor"}
    assert entry("cursor", "http", CONNECTION) == {"url": "http://127.0.0.1:8080/mcp", "headers": headers}
    assert entry("claude-code", "http", CONNECTION) == {"type": "http", "url": "http://127.0.0.1:8080/mcp",
                                                         "headers": headers}
    assert entry("vscode", "http", CONNECTION)["type"] == "http"
    stdio = entry("claude-desktop", "stdio", CONNECTION)
    assert stdio == {"command": "/opt/rs/bin/recallstack", "args": ["mcp"],
                     "env": {"RECALLSTACK_URL": "http://127.0.0.1:8080", "RECALLSTACK_API_KEY": "rsk_secret",
                             "RECALLSTACK_MCP_USER_ID": "ada", "RECALLSTACK_MCP_AGENT_ID": "cursor"}}
    as_module = Connection("http://h:1", None, "ada", "vscode", ("/venv/bin/python", "-m", "cli.main"))
    assert entry("vscode", "stdio", as_module) == {
        "type": "stdio", "command": "/venv/bin/python", "args": ["-m", "cli.main", "mcp"],
        "env": {"RECALLSTACK_URL": "http://h:1", "RECALLSTACK_MCP_USER_ID": "ada", "RECALLSTACK_MCP_AGENT_ID": "vscode"}}
    assert "Authorization" not in entry("cursor", "http", as_module)["headers"]  # the no-auth mode: no key
    assert set(BEST_TRANSPORT) == set(CLIENTS)


def test_merging_keeps_every_other_server_and_setting():
    old = json.dumps({"theme": "dark", "mcpServers": {"github": {"command": "gh-mcp"}}, "zeta": [1, 2]}, indent=4)
    new, replaced = merge(old, ("mcpServers",), "recallstack", {"url": "u"})
    document = json.loads(new)
    assert not replaced and list(document) == ["theme", "mcpServers", "zeta"]
    assert document["mcpServers"] == {"github": {"command": "gh-mcp"}, "recallstack": {"url": "u"}}
    assert new.splitlines()[1].startswith('    "theme"') and new.endswith("}\n")  # its indentation kept
    again, replaced = merge(new, ("mcpServers",), "recallstack", {"url": "v"})
    assert replaced and json.loads(again)["mcpServers"] == {"github": {"command": "gh-mcp"}, "recallstack": {"url": "v"}}
    assert find(again, ("mcpServers",), "recallstack") == {"url": "v"} and find(again, ("mcpServers",), "x") is None


def test_merging_into_nothing_and_into_claude_codes_project_section():
    assert json.loads(merge(None, ("servers",), "recallstack", {"type": "http"})[0]) == {
        "servers": {"recallstack": {"type": "http"}}}
    assert json.loads(merge("  \n", ("servers",), "r", {})[0]) == {"servers": {"r": {}}}
    state = json.dumps({"numStartups": 4, "projects": {"/other": {"mcpServers": {"a": {}}, "allowedTools": []}}})
    at = ("projects", str(PROJECT), "mcpServers")
    document = json.loads(merge(state, at, "recallstack", {"type": "http"})[0])
    assert document["numStartups"] == 4 and document["projects"]["/other"] == {"mcpServers": {"a": {}}, "allowedTools": []}
    assert document["projects"][str(PROJECT)] == {"mcpServers": {"recallstack": {"type": "http"}}}


@pytest.mark.parametrize("text, message", [
    ('{"mcpServers": {', "not valid JSON (line 1"),
    ('{"servers": {}, // mine\n}', "not valid JSON"),
    ('[1, 2]', "a JSON list, not an object"),
    ('{"mcpServers": []}', "'mcpServers' is a JSON list"),
    ('{"projects": {"/home/ada/src/app": "x"}}', "'projects > /home/ada/src/app' is a JSON str"),
])
def test_what_cannot_be_merged_safely_is_refused(text, message):
    servers_at = ("projects", str(PROJECT), "mcpServers") if "projects" in text else (
        "servers",) if "servers" in text else ("mcpServers",)
    with pytest.raises(ConfigRefused, match=message.replace("(", r"\(").replace("[", r"\[")):
        merge(text, servers_at, "recallstack", {})
    with pytest.raises(ConfigRefused):
        find(text, servers_at, "recallstack")


def test_install_writes_atomically_with_a_timestamped_backup(tmp_path):
    path = tmp_path / "cfg" / "mcp.json"
    spot = Target("cursor", "user", path, ("mcpServers",))
    first = mcp_install.write(mcp_install.plan(spot, "recallstack", "http", CONNECTION))
    assert first.backup is None and stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds a key
    path.write_text('{"mcpServers": {"github": {"command": "gh"}}}')
    path.chmod(0o640)
    old = path.read_text()
    now = datetime(2026, 12, 6, 18, 30, 5, tzinfo=timezone.utc)
    second = mcp_install.write(mcp_install.plan(spot, "recallstack", "http", CONNECTION), now)
    assert second.backup == backup_name(path, now) == path.with_name("mcp.json.bak-20261206T183005Z")
    assert second.backup.read_text() == old and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert set(json.loads(path.read_text())["mcpServers"]) == {"github", "recallstack"}
    third = mcp_install.write(mcp_install.plan(spot, "recallstack", "http", CONNECTION), now)
    assert third.replaced and third.backup.name == "mcp.json.bak-20261206T183005Z-1"
    assert sorted(p.name for p in path.parent.iterdir()) == ["mcp.json", "mcp.json.bak-20261206T183005Z",
                                                             "mcp.json.bak-20261206T183005Z-1"]  # no temp file left


def test_a_malformed_file_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "claude_desktop_config.json"
    path.write_text('{"mcpServers": {"a": {}},}')
    with pytest.raises(ConfigRefused, match=f"{path}: not valid JSON.*left as it is"):
        mcp_install.plan(Target("claude-desktop", "user", path, ("mcpServers",)), "recallstack", "stdio", CONNECTION)
    assert path.read_text() == '{"mcpServers": {"a": {}},}' and list(tmp_path.iterdir()) == [path]


def test_a_linked_file_stays_a_link(tmp_path):
    real = tmp_path / "dotfiles" / "mcp.json"
    real.parent.mkdir()
    real.write_text("{}")
    link = tmp_path / "mcp.json"
    link.symlink_to(real)
    mcp_install.write(mcp_install.plan(Target("cursor", "user", link, ("mcpServers",)), "recallstack", "http",
                                       CONNECTION))
    assert link.is_symlink() and "recallstack" in json.loads(real.read_text())["mcpServers"]
