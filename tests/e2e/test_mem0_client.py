"""mem0's own client (`MemoryClient` of the real mem0ai package, unchanged) against the running stack
through the base URL (issue 25 item 1, docs/mem0.md): ping, add (text, messages, ids, metadata,
infer), search (filters, top_k, threshold, rerank), get, get_all, update, history, batch update
and delete, delete, delete_all, and its errors; each phase's effect is checked with recallstack's
own API. mem0 lives in .venv-mem0 (`make install`); tests/e2e/mem0_driver.py runs it there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MEM0_PYTHON = ROOT / ".venv-mem0" / "bin" / "python"
DRIVER = Path(__file__).with_name("mem0_driver.py")


def mem0(phase: str, base_url: str, key: str, user_id: str, earlier: dict | None = None,
         tmp: Path | None = None) -> dict:
    assert MEM0_PYTHON.exists(), f"mem0's client is not installed ({MEM0_PYTHON} is missing): run `make install`"
    env = {**os.environ, "MEM0_TELEMETRY": "false", "MEM0_DIR": str(tmp or ROOT / ".venv-mem0" / "home")}
    env.pop("MEM0_API_KEY", None)
    done = subprocess.run([str(MEM0_PYTHON), str(DRIVER), phase, base_url, key, user_id, json.dumps(earlier or {})],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, f"mem0 driver, phase {phase}:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def user_key(gateway, user_id) -> str:
    answer = gateway.post("/v1/keys", json={"user_id": user_id, "scopes": ["write"]})  # an ordinary write key
    assert answer.status_code == 201, answer.text
    return answer.json()["key"]


def test_mem0s_client_works_unchanged_against_recallstack(services, gateway, user_key, user_id, tmp_path):
    base = services.gateway_url
    own = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {user_key}"}, timeout=30)

    added = mem0("add", base, user_key, user_id, tmp=tmp_path)
    assert added["org_id"] == "recallstack" and added["project_id"] == user_id  # what the ping answered
    [tea] = [r["id"] for r in added["text"]["results"]]
    assert added["text"]["status"] == "PENDING" and added["text"]["event_id"] == tea
    dog, rex = [r["id"] for r in added["messages"]["results"]]
    assert added["inferred"]["status"] == "PENDING" and added["inferred"]["results"] == []  # queued for extraction
    assert added["get"]["memory"] == "I prefer green tea in the morning" and added["get"]["agent_id"] == "helper"
    mine = own.get(f"/v1/memories/{dog}").json()
    assert (mine["memory"], mine["run_id"], mine["app_id"], mine["metadata"]["role"]) == (
        "My dog is called Rex", "run-1", "notes", "user")
    assert own.get(f"/v1/memories/{tea}").json()["metadata"] == {"topic": "drinks", "role": "user"}  # a message
    assert added["bad_add"]["type"] == "ValidationError" and "user_id" in added["bad_add"]["message"]
    assert added["bad_add_field"]["status"] == 422 and "nonsense" in added["bad_add_field"]["message"]

    read = mem0("read", base, user_key, user_id, tmp=tmp_path)
    assert read["search"]["results"][0]["id"] == tea and len(read["search"]["results"]) <= 3
    native = own.post("/v1/memories/search", json={"query": "what tea do I like?", "limit": 3, "threshold": 0.0})
    # the same search through recallstack's own API finds the same memory first (the rest may differ by
    # which read models had applied the latest writes at each moment: mem0's client sends no token)
    assert native.json()["results"][0]["id"] == tea
    assert all(set(r) >= {"id", "memory", "score", "metadata", "created_at"} for r in read["search"]["results"])
    # its rerank=True reaches the search; the session's stack has no reranker: noted, not refused (docs/mem0.md)
    assert [d["source"] for d in read["search"].get("degraded", [])] == ["rerank"], read["search"]
    assert read["search_run"]["results"] and {r["run_id"] for r in read["search_run"]["results"]} == {"run-1"}
    assert read["search_metadata"]["results"][0]["id"] == tea
    assert [r["id"] for r in read["all_metadata"]["results"]] == [tea] and read["all_metadata"]["count"] == 1
    # the inferred add may have been extracted by now (worker-extract's offline extractor): one more
    assert read["all"]["count"] == len(read["all"]["results"]) in (3, 4) and read["all"]["next"] is None
    assert {tea, dog, rex} <= {r["id"] for r in read["all"]["results"]} and read["all"]["previous"] is None
    assert read["page"]["count"] == 2 and len(read["page"]["results"]) == 1 and read["page"]["next"]
    assert read["missing"]["type"] == "MemoryNotFoundError"
    assert read["bad_search"]["status"] == 422 and "filters.user_id" in read["bad_search"]["message"]
    assert read["bad_filter"]["status"] == 422 and "colour" in read["bad_filter"]["message"]

    # mem0's get_all answer is a mem0 export: `recallstack import --from-mem0` brings it to another user
    exported = tmp_path / "mem0-export.json"
    exported.write_text(json.dumps(read["all"]))
    copy = f"{user_id}-copy"
    done = subprocess.run([sys.executable, "-m", "cli.main", "import", str(exported), "--from-mem0", "--user", copy,
                           "--url", base, "--json"], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "RECALLSTACK_HOME": str(services.home)})
    assert done.returncode == 0, done.stdout + done.stderr
    imported = json.loads(done.stdout)
    copied = gateway.get("/v1/memories", params={"user_id": copy, "consistency_token": imported["consistency_token"]}
                         ).json()["results"]
    assert sorted(m["memory"] for m in copied) == sorted(m["memory"] for m in read["all"]["results"])
    assert {m["metadata"]["imported_from"]["id"] for m in copied} == {m["id"] for m in read["all"]["results"]}

    changed = mem0("change", base, user_key, user_id, {"tea": tea, "dog": dog, "rex": rex}, tmp=tmp_path)
    assert changed["update"]["id"] == tea and changed["get"]["metadata"] == {"topic": "tea"}
    assert [(h["event"], h["new_memory"]) for h in changed["history"]] == [
        ("ADD", "I prefer green tea in the morning"), ("UPDATE", "I prefer jasmine tea in the morning")]
    ours = own.get(f"/v1/memories/{tea}/history").json()["history"]  # Bearer: the native shape, the same changes
    assert [h["event_id"] for h in ours] == [h["id"] for h in changed["history"]] + [ours[-1]["event_id"]]
    assert ours[-1]["event"] == "MemoryDeleted"  # the phase's last step, after mem0 read the history
    assert changed["batch_update"]["message"] == "Successfully updated 1 memories"
    assert changed["batch_delete"]["message"] == "Successfully deleted 1 memories"
    assert changed["bad_batch"]["status"] == 422 and "memories.0.memory_id" in changed["bad_batch"]["message"]
    token = changed["delete"]["consistency_token"]
    left = own.get("/v1/memories", params={"consistency_token": token}).json()["results"]
    kept = [(m["id"], m["memory"]) for m in left if m["id"] in (tea, dog, rex)]
    assert kept == [(dog, "My dog Rex is three years old")]

    cleared = mem0("delete_all", base, user_key, user_id, tmp=tmp_path)
    token = cleared["delete_all"]["consistency_token"]
    assert own.get("/v1/memories", params={"consistency_token": token}).json()["total"] == 0


def test_a_wrong_key_fails_mem0s_client_at_construction(services, tmp_path):
    refused = mem0("bad-key", services.gateway_url, "unused", "nobody", tmp=tmp_path)["bad_key"]
    assert refused["type"] == "ValueError" and "unknown, revoked or expired" in refused["message"]


def test_the_mem0_venv_is_pinned_where_make_install_puts_it():
    assert MEM0_PYTHON.exists(), f"mem0's client is not installed ({MEM0_PYTHON} is missing): run `make install`"
    version = subprocess.run([str(MEM0_PYTHON), "-c", "import importlib.metadata as m; print(m.version('mem0ai'))"],
                             capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == "2.2.1", version.stderr
    assert sys.executable != str(MEM0_PYTHON)


MESSAGE = [{"role": "user", "content": "hello"}]
ANY = "6f1c7c2e-8f59-4f5e-9a63-4c1b0a3c2d11"
# (method, mem0 path, raw body, field named); the user's key, through the base URL
BAD = [
    ("POST", "/v3/memories/add/", '{"messages": "hello"}', "messages"),
    ("POST", "/v3/memories/add/", '{"messages": [{"role": "robot", "content": "a"}]}', "messages.0.role"),
    ("POST", "/v3/memories/add/", '{"messages": [{"role": "user", "content": "a"}], "metadata": {"n": NaN}}',
     "metadata.n"),
    ("POST", "/v3/memories/add/", '{"messages": [{"role": "user", "content": "a"}], "timestamp": 1e300}', "timestamp"),
    ("POST", "/v3/memories/add/", '{"messages": [{"role": "user", "content": "a"}], "agent_id": "a b"}', "agent_id"),
    ("POST", "/v3/memories/add/", '[]', "body"),
    ("POST", "/v3/memories/search/", '{"query": "x", "filters": {"colour": "red"}}', "filters.colour"),
    ("POST", "/v3/memories/search/", '{"query": "", "filters": {}}', "query"),
    ("POST", "/v3/memories/search/", '{"query": "x", "top_k": "ten"}', "top_k"),
    ("POST", "/v3/memories/search/", '{"query": "x", "filters": {"user_id": ["a", "b"]}}', "filters.user_id"),
    ("POST", "/v3/memories/search/", '{"query": "x", "reference_date": "someday"}', "reference_date"),
    ("POST", "/v3/memories/search/", '{"query": "x", "threshold": Infinity}', "threshold"),
    ("POST", "/v3/memories/", '{"filters": {"user_id": "not an id"}}', "filters.user_id"),
    ("POST", "/v3/memories/", '{"filters": {"created_at": {"gt": "yesterday"}}}', "filters.created_at.gt"),
    ("POST", "/v3/memories/", '{"start_date": "soon"}', "start_date"),
    ("PUT", f"/v1/memories/{ANY}/", '{"text": ""}', "text"),
    ("PUT", f"/v1/memories/{ANY}/", '{"memory": "x"}', "memory"),
    ("PUT", "/v1/batch/", '{"memories": [{"memory_id": "x", "text": "t"}]}', "memories.0.memory_id"),
    ("PUT", "/v1/batch/", '{"memories": [{"memory_id": "' + ANY + '", "text": " "}]}', "memories.0.text"),
    ("DELETE", "/v1/batch/", '{"memories": "all"}', "memories"),
]


def test_bad_mem0_bodies_are_4xx_naming_the_field_and_change_nothing(services, user_key):
    with httpx.Client(base_url=services.gateway_url, headers={"Authorization": f"Token {user_key}",
                                                              "content-type": "application/json"}, timeout=30) as c:
        for method, path, body, field in BAD:
            answer = c.request(method, path, content=body.encode())
            assert 400 <= answer.status_code < 500, (method, path, body, answer.status_code, answer.text)
            error = answer.json()["error"]
            named = [error["details"].get("field")] + [e["field"] for e in error["details"].get("errors", [])]
            assert field in named, (method, path, body, error)
        assert c.get("/v1/memories").json()["total"] == 0  # nothing was added
