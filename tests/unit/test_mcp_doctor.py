"""`recallstack mcp doctor`'s own logic without a stack (issue 25 item 5): reading an entry
back into how the client reaches recallstack, and a failed step skipping the ones after it
with a fix (a missing file, a broken file, a base URL nothing listens on).
tests/e2e/test_mcp_install.py runs every step against the running stack."""

from __future__ import annotations

import pytest

from cli.mcp_config import Connection, Target, entry
from cli.mcp_doctor import Doctor, StepFailed, endpoint_of

CONNECTION = Connection("http://127.0.0.1:8080", "rsk_secret", "ada", "cursor", ("/bin/sh",))


def test_an_entry_reads_back_as_the_way_the_client_connects():
    http = endpoint_of(entry("claude-code", "http", CONNECTION))
    assert (http.transport, http.base_url, http.api_key, http.user_id, http.url) == (
        "http", "http://127.0.0.1:8080", "rsk_secret", "ada", "http://127.0.0.1:8080/mcp")
    stdio = endpoint_of(entry("claude-desktop", "stdio", CONNECTION))
    assert (stdio.transport, stdio.base_url, stdio.api_key, stdio.command, stdio.args) == (
        "stdio", "http://127.0.0.1:8080", "rsk_secret", "/bin/sh", ["mcp"])
    for bad in ({}, {"url": "u", "headers": {"a": 1}}, {"command": "c", "args": "mcp"}):
        with pytest.raises(StepFailed) as failed:
            endpoint_of(bad)
        assert "mcp install" in failed.value.hint


def spot(path) -> Target:
    return Target("cursor", "user", path, ("mcpServers",))


async def test_a_missing_or_broken_file_fails_config_and_skips_the_rest(tmp_path):
    checks = await Doctor(spot(tmp_path / "mcp.json"), "recallstack").run()
    assert [(c.name, c.ok) for c in checks] == [("config", False), ("server", None), ("key", None), ("mcp", None),
                                               ("round trip", None)]
    assert "does not exist" in checks[0].detail and "mcp install --client cursor --scope user" in checks[0].hint
    (tmp_path / "mcp.json").write_text('{"mcpServers": [}')
    [config, *_] = await Doctor(spot(tmp_path / "mcp.json"), "recallstack").run()
    assert config.ok is False and "not valid JSON" in config.detail and "fix the file" in config.hint
    (tmp_path / "mcp.json").write_text('{"mcpServers": {"other": {}}}')
    [config, *_] = await Doctor(spot(tmp_path / "mcp.json"), "recallstack").run()
    assert config.ok is False and "no 'recallstack' entry" in config.detail


async def test_a_server_that_does_not_answer_fails_the_server_step(tmp_path):
    import json

    nowhere = Connection("http://127.0.0.1:1", "rsk_secret", "ada", "cursor")
    (tmp_path / "mcp.json").write_text(json.dumps({"mcpServers": {"recallstack": entry("cursor", "http", nowhere)}}))
    checks = await Doctor(spot(tmp_path / "mcp.json"), "recallstack", timeout=5).run()
    assert [c.ok for c in checks] == [True, False, None, None, None]
    assert "does not answer" in checks[1].detail and "recallstack up" in checks[1].hint
