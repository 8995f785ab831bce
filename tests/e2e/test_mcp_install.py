"""`recallstack mcp install` and `mcp doctor` against the running stack, as a user runs them:
subprocesses with a temporary HOME (and project directory) holding each client's files.
For every client: install merges into an existing file (other servers kept, a backup
made) with a freshly issued key, and doctor passes every step, the round trip included,
reaching the MCP server exactly as the client would (HTTP with the entry's headers, or the
entry's command over stdio). A malformed file is refused untouched with no key issued; a
revoked key and a wrong URL are named by doctor with a fix. The MCP server's instructions
and its search_graph tool are driven through the installed entry by the official client."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server.server import INSTRUCTIONS
from tests.e2e.conftest import admin_headers

pytestmark = pytest.mark.e2e

ENTRY = Path(sys.executable).with_name("recallstack")
STEPS = ["config", "server", "key", "mcp", "round trip"]
# Where each client's file lands under the temporary HOME (h) and project (p), and its servers' key.
FILES = {"cursor": ("h", ".cursor/mcp.json", "mcpServers"), "claude-code": ("h", ".claude.json", "mcpServers"),
         "claude-desktop": ("h", ".config/Claude/claude_desktop_config.json", "mcpServers"),
         "vscode": ("p", ".vscode/mcp.json", "servers")}


class Machine:
    """A temporary HOME and project directory, and `recallstack` run in them."""

    def __init__(self, root: Path, settings):
        self.home, self.project, self.settings = root / "home", root / "project", settings
        self.home.mkdir()
        self.project.mkdir()

    def path(self, client: str) -> Path:
        base, relative, _ = FILES[client]
        return (self.home if base == "h" else self.project) / relative

    def run(self, *argv: str, expect_json: bool = True) -> tuple[int, dict | str, str]:
        command = [str(ENTRY)] if ENTRY.exists() else [sys.executable, "-m", "cli.main"]
        env = {k: v for k, v in os.environ.items() if k not in ("XDG_CONFIG_HOME", "APPDATA")}
        done = subprocess.run([*command, *argv], env={**env, "HOME": str(self.home),
                                                      "RECALLSTACK_HOME": str(self.settings.home)},
                              cwd=self.project, capture_output=True, text=True, timeout=300, check=False)
        if not expect_json:
            return done.returncode, done.stdout, done.stderr
        try:
            return done.returncode, json.loads(done.stdout), done.stderr
        except json.JSONDecodeError:
            pytest.fail(f"stdout of {' '.join(argv)} is not one JSON document:\n{done.stdout}\nstderr:\n{done.stderr}")


@pytest.fixture
def machine(tmp_path, services):
    return Machine(tmp_path, services)


def user_keys(gateway_url: str, user: str) -> list[dict]:
    import httpx

    answer = httpx.get(f"{gateway_url}/v1/keys", params={"user_id": user}, headers=admin_headers(), timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]


@pytest.mark.parametrize("client", list(FILES))
def test_install_merges_with_a_fresh_key_and_doctor_passes_every_step(machine, services, user_id, client):
    path = machine.path(client)
    path.parent.mkdir(parents=True, exist_ok=True)
    servers = FILES[client][2]
    before = {"theme": "dark", servers: {"github": {"command": "github-mcp", "args": ["stdio"]}}}
    path.write_text(json.dumps(before, indent=2))
    code, installed, err = machine.run("mcp", "install", "--client", client, "--user", user_id, "--json")
    assert code == 0, err
    assert installed["path"] == str(path) and installed["user_id"] == user_id and installed["replaced"] is False
    assert installed["transport"] == ("stdio" if client == "claude-desktop" else "http")
    assert installed["url"] == services.gateway_url and installed["key_prefix"].startswith("rsk_")
    assert json.loads(Path(installed["backup"]).read_text()) == before  # the old file, kept beside it
    document = json.loads(path.read_text())
    assert document["theme"] == "dark" and document[servers]["github"] == before[servers]["github"]
    entry = document[servers]["recallstack"]
    key = (entry["env"]["RECALLSTACK_API_KEY"] if client == "claude-desktop"
           else entry["headers"]["Authorization"].removeprefix("Bearer "))
    assert key.startswith(installed["key_prefix"]) and key != os.environ.get("RECALLSTACK_API_KEY")
    [issued] = user_keys(services.gateway_url, user_id)  # a key of the user's own, not the admin's
    assert issued["key_id"] == installed["key_id"] and "write" in issued["scopes"]

    code, report, err = machine.run("mcp", "doctor", "--client", client, "--json")
    assert code == 0, json.dumps(report, indent=2) + err
    assert report["ok"] is True and [c["name"] for c in report["checks"]] == STEPS
    assert all(c["ok"] is True for c in report["checks"]), report
    assert "found by the next search" in report["checks"][-1]["detail"]


def test_install_again_replaces_its_entry_and_dry_run_writes_nothing(machine, user_id):
    code, first, err = machine.run("mcp", "install", "--client", "cursor", "--user", user_id, "--json")
    assert code == 0, err
    path = machine.path("cursor")
    assert first["backup"] is None and stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds a key
    written = path.read_text()
    code, dry, err = machine.run("mcp", "install", "--client", "cursor", "--user", user_id, "--dry-run", "--json")
    assert code == 0 and dry["dry_run"] is True and dry["replaced"] is True, err
    assert "rsk_<issued when not a dry run>" in dry["config"] and path.read_text() == written
    assert sorted(p.name for p in path.parent.iterdir()) == ["mcp.json"]
    code, second, err = machine.run("mcp", "install", "--client", "cursor", "--user", user_id, "--json")
    assert code == 0 and second["replaced"] is True and Path(second["backup"]).read_text() == written, err
    assert list(json.loads(path.read_text())["mcpServers"]) == ["recallstack"]
    code, report, err = machine.run("mcp", "doctor", "--json")  # no --client: the one configured
    assert code == 0 and report["client"] == "cursor" and report["path"] == str(path), err


def test_a_malformed_file_is_refused_untouched_and_no_key_is_issued(machine, services, user_id):
    path = machine.path("claude-code")
    path.write_text('{"mcpServers": {"github": {"command": "gh"}},}\n')
    code, answer, err = machine.run("mcp", "install", "--client", "claude-code", "--user", user_id, "--json")
    assert code == 1 and answer["error"]["code"] == "refused", err
    assert str(path) in answer["error"]["message"] and "not valid JSON (line 1" in answer["error"]["message"]
    assert path.read_text() == '{"mcpServers": {"github": {"command": "gh"}},}\n'
    assert [p.name for p in machine.home.iterdir()] == [".claude.json"]  # no backup, no temporary file
    assert user_keys(services.gateway_url, user_id) == []


def test_doctor_names_the_failing_step_and_how_to_fix_it(machine, services, gateway, user_id):
    code, installed, err = machine.run("mcp", "install", "--client", "cursor", "--user", user_id, "--json")
    assert code == 0, err
    code, report, _ = machine.run("mcp", "doctor", "--client", "vscode", "--json")  # never installed
    assert code == 1 and report["checks"][0]["ok"] is False and "mcp install --client vscode" in report["checks"][0]["hint"]
    assert [c["ok"] for c in report["checks"][1:]] == [None] * 4

    revoked = gateway.delete(f"/v1/keys/{installed['key_id']}", params={"user_id": user_id})
    assert revoked.status_code == 202, revoked.text
    key = json.loads(machine.path("cursor").read_text())["mcpServers"]["recallstack"]["headers"]["Authorization"]
    deadline = time.monotonic() + 30  # the projection, then the services' 0.5 s key cache
    while gateway.get("/v1/me", headers={"Authorization": key}).status_code != 401:
        assert time.monotonic() < deadline, "the revoked key still works"
        time.sleep(0.2)
    code, text, _ = machine.run("mcp", "doctor", "--client", "cursor", expect_json=False)
    assert code == 1, text
    lines = text.splitlines()
    assert lines[0].startswith("ok   config") and lines[1].startswith("ok   server")
    assert lines[2].startswith("FAIL key") and "refused (401)" in lines[2]
    assert "fix:" in lines[3] and "mcp install --client cursor" in lines[3]
    assert lines[4].startswith("skip mcp") and lines[5].startswith("skip round trip")

    path = machine.path("cursor")
    document = json.loads(path.read_text())
    document["mcpServers"]["recallstack"]["url"] = "http://127.0.0.1:1/mcp"
    path.write_text(json.dumps(document))
    code, report, _ = machine.run("mcp", "doctor", "--client", "cursor", "--json")
    assert code == 3 and [c["ok"] for c in report["checks"]] == [True, False, None, None, None]
    assert "recallstack up" in report["checks"][1]["hint"]


async def test_instructions_and_search_graph_through_the_installed_entry(machine, user_id):
    code, installed, err = machine.run("mcp", "install", "--client", "cursor", "--user", user_id, "--json")
    assert code == 0, err
    entry = json.loads(machine.path("cursor").read_text())["mcpServers"]["recallstack"]
    async with httpx2.AsyncClient(headers=entry["headers"], timeout=60) as http:
        async with Client(streamable_http_client(entry["url"], http_client=http), read_timeout_seconds=60) as client:
            assert client.instructions == INSTRUCTIONS and client.server_info.name == "recallstack"
            ids = []
            for text in ("Alice Moreau works at Acme Corp on the billing service", "Alice Moreau lives in Lisbon"):
                stored = await client.call_tool("add_memories", {"text": text})
                assert not stored.is_error and stored.structured_content["user_id"] == user_id
                ids.append(stored.structured_content["stored"][0]["id"])
            # Straight after the writes: the graph read waits for them (the server passes their token).
            result = await client.call_tool("search_graph", {"name": "alice"})
            assert not result.is_error, result.content
            found = result.structured_content
            assert [m["name"] for m in found["matches"]] == ["Alice Moreau"]
            assert {(r["source"], r["type"], r["target"]) for r in found["relations"]} == {
                ("Alice Moreau", "works_at", "Acme Corp"), ("Alice Moreau", "lives_in", "Lisbon")}
            assert sorted(found["memory_ids"]) == sorted(ids)
            assert {e["name"] for e in found["entities"]} == {"Alice Moreau", "Acme Corp", "Lisbon"}
            missing = (await client.call_tool("search_graph", {"name": f"nobody-{uuid.uuid4().hex[:6]}"}))
            assert not missing.is_error and missing.structured_content["matches"] == []
            assert "Alice Moreau" in missing.structured_content["known_entities"]
            assert (await client.call_tool("search_graph", {"name": "alice", "depth": 5})).is_error
            await client.call_tool("delete_all_memories", {"confirm": True})
