"""`recallstack export` / `import` against the running stack, run as a user runs them (a
subprocess), and the command API's check of the vectors an import sends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from domain.events import MemoryCreated

pytestmark = pytest.mark.e2e

ENTRY = Path(sys.executable).with_name("recallstack")
MODEL = "sentence-transformers/all-MiniLM-L6-v2"

MEMORIES = [
    {"text": "Alice prefers green tea in the morning", "agent_id": "cursor", "app_id": "ide",
     "metadata": {"topic": "food", "nested": {"a": [1, 2]}}, "categories": ["preferences"], "importance": 0.7,
     "occurred_at": "2023-05-08T13:56:00Z"},
    {"text": "The billing service is written in Rust", "run_id": "run-7", "metadata": {"team": "billing"},
     "occurred_at": "2024-01-02T03:04:05Z"},
    {"text": "Deploys happen every Thursday afternoon", "agent_id": "claude", "categories": ["work", "ops"],
     "expires_at": "2099-01-01T00:00:00Z"},
    {"text": "Bob's flat number is 4B", "metadata": {"pinned": True}},
    {"text": "The staging database is Postgres 16", "app_id": "infra", "importance": 0.2},
]


def cli(settings, *argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    command = [str(ENTRY)] if ENTRY.exists() else [sys.executable, "-m", "cli.main"]
    return subprocess.run([*command, *argv], env={**os.environ, "RECALLSTACK_HOME": str(settings.home)},
                          input=stdin, capture_output=True, timeout=300, check=False)


def json_of(done: subprocess.CompletedProcess) -> dict:
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not one JSON document:\n{done.stdout!r}\nstderr:\n{done.stderr.decode()}")


@pytest.fixture
def source(gateway, log, user_id):
    """A user with MEMORIES, visible to reads; (user, their MemoryCreated events by text)."""
    log.mark()
    answer = gateway.post("/v1/memories/batch", json={"memories": [{**m, "user_id": user_id} for m in MEMORIES]})
    assert answer.status_code == 202, answer.text
    token = answer.json()["consistency_token"]
    created = {e.text: e for e in log.events(token) if isinstance(e, MemoryCreated) and e.user_id == user_id}
    listed = gateway.get("/v1/memories", params={"user_id": user_id, "consistency_token": token})
    assert listed.json()["total"] == len(MEMORIES)
    return user_id, created


def export(services, tmp_path, user: str, *extra: str) -> tuple[Path, dict]:
    out = tmp_path / f"{user}.jsonl"
    done = cli(services, "export", "--user", user, "--out", str(out), "--url", services.gateway_url, "--json", *extra)
    assert done.returncode == 0, done.stderr.decode()
    return out, json_of(done)


def import_(services, path: Path, user: str, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    done = cli(services, "import", str(path), "--user", user, "--url", services.gateway_url, "--json", *extra)
    return done, json_of(done)


def memories_of(gateway, user: str, token: str | None = None) -> list[dict]:
    answer = gateway.get("/v1/memories", params={"user_id": user, "page_size": 1000, "sort": "created_at",
                                                 "order": "asc", **({"consistency_token": token} if token else {})})
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]


def kept(memory: dict) -> dict:
    """What an import must preserve."""
    metadata = {k: v for k, v in memory["metadata"].items() if k != "imported_from"}
    return {"memory": memory["memory"], "metadata": metadata, "categories": memory["categories"],
            "importance": round(memory["importance"], 5), "agent_id": memory["agent_id"], "run_id": memory["run_id"],
            "app_id": memory["app_id"], "occurred_at": memory["occurred_at"], "expires_at": memory["expires_at"]}


def test_export_then_import_into_a_fresh_user_keeps_everything(services, gateway, source, tmp_path):
    user, _ = source
    path, summary = export(services, tmp_path, user)
    assert summary["user_id"] == user and summary["count"] == len(MEMORIES) and summary["file"] == str(path)
    assert summary["seconds"] >= 0
    header, *rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert header["format"] == "recallstack.memories" and header["version"] == 2
    assert [r["expires_at"] for r in rows].count("2099-01-01T00:00:00+00:00") == 1
    assert (header["user_id"], header["count"], header["embedding_model"], header["dim"]) == \
        (user, len(MEMORIES), MODEL, 384)
    originals = memories_of(gateway, user)
    assert sorted(r["id"] for r in rows) == sorted(m["id"] for m in originals)
    assert all("embedding" not in r for r in rows)

    copy = f"{user}-copy"
    done, result = import_(services, path, copy)
    assert done.returncode == 0, done.stderr.decode()
    assert (result["count"], result["user_id"], result["source_user_id"]) == (len(MEMORIES), copy, user)
    assert result["vectors_used"] == 0 and result["re_embedded"] == len(MEMORIES)
    assert f"re-embedding {len(MEMORIES)} memories with {MODEL}" in done.stderr.decode()

    imported = memories_of(gateway, copy, result["consistency_token"])
    assert sorted(map(json.dumps, map(kept, imported))) == sorted(map(json.dumps, map(kept, originals)))
    # New ids; the original's id and the export's time are in metadata.imported_from.
    by_id = {m["id"]: m for m in originals}
    for memory in imported:
        origin = memory["metadata"]["imported_from"]
        assert memory["id"] not in by_id and memory["state"] == "active"
        assert origin["exported_at"] == header["exported_at"]
        assert by_id[origin["id"]]["memory"] == memory["memory"]
    found = gateway.post("/v1/memories/search", json={"query": "which tea does Alice drink?", "user_id": copy,
                                                       "consistency_token": result["consistency_token"]}).json()
    assert found["results"][0]["memory"] == "Alice prefers green tea in the morning"


def test_export_to_stdout_is_the_same_file(services, source, tmp_path):
    user, _ = source
    path, _ = export(services, tmp_path, user)
    done = cli(services, "export", "--user", user, "--out", "-", "--url", services.gateway_url)
    assert done.returncode == 0, done.stderr.decode()
    piped = done.stdout.decode().splitlines()
    written = path.read_text().splitlines()
    assert piped[1:] == written[1:]
    assert {k: v for k, v in json.loads(piped[0]).items() if k != "exported_at"} == \
        {k: v for k, v in json.loads(written[0]).items() if k != "exported_at"}
    assert cli(services, "export", "--user", user, "--out", "-", "--json").returncode == 2
    again = cli(services, "export", "--user", user, "--out", str(path), "--url", services.gateway_url)
    assert again.returncode == 1 and b"--force" in again.stderr  # an existing file is not replaced unasked


def test_with_vectors_of_the_same_model_the_import_sends_them(services, gateway, source, log, tmp_path):
    user, created = source
    path, summary = export(services, tmp_path, user, "--include-vectors")
    rows = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    assert all(r["embedding_model"] == MODEL and len(r["embedding"]) == 384 for r in rows)
    assert {r["memory"]: tuple(r["embedding"]) for r in rows} == {t: e.embedding for t, e in created.items()}

    copy = f"{user}-vectors"
    log.mark()
    done, result = import_(services, path, copy)
    assert done.returncode == 0, done.stderr.decode()
    assert result["vectors_used"] == len(MEMORIES) and result["re_embedded"] == 0
    assert "re-embedding" not in done.stderr.decode()
    events = [e for e in log.events(result["consistency_token"]) if isinstance(e, MemoryCreated)
              and e.user_id == copy]
    assert len(events) == len(MEMORIES)
    for event in events:  # the very vectors of the originals: nothing was embedded again
        assert event.embedding == created[event.text].embedding
        assert event.embedding_model == MODEL


def test_vectors_of_another_model_are_not_trusted_the_texts_are_embedded_again(services, gateway, source, log,
                                                                                tmp_path):
    user, created = source
    path, _ = export(services, tmp_path, user, "--include-vectors")
    header, *rows = [json.loads(line) for line in path.read_text().splitlines()]
    header["embedding_model"] = "example/other-model"
    for row in rows:
        row["embedding_model"] = "example/other-model"
        row["embedding"] = [1.0] + [0.0] * 383  # a vector that must not end up in the log
    other = tmp_path / "other-model.jsonl"
    other.write_text("".join(json.dumps(doc) + "\n" for doc in [header, *rows]))
    copy = f"{user}-other"
    log.mark()
    done, result = import_(services, other, copy)
    assert done.returncode == 0, done.stderr.decode()
    assert result["vectors_used"] == 0 and result["re_embedded"] == len(MEMORIES)
    assert f"re-embedding {len(MEMORIES)} memories with {MODEL}" in done.stderr.decode()
    assert "example/other-model" in done.stderr.decode()
    events = [e for e in log.events(result["consistency_token"]) if isinstance(e, MemoryCreated)
              and e.user_id == copy]
    assert {e.embedding_model for e in events} == {MODEL}
    assert all(e.embedding[:2] != (1.0, 0.0) for e in events)


def test_a_corrupt_file_imports_nothing_and_names_the_line(services, gateway, source, log, tmp_path):
    user, _ = source
    path, _ = export(services, tmp_path, user)
    lines = path.read_text().splitlines()
    doc = json.loads(lines[3])
    doc["importance"] = 7  # line 4: out of range
    lines[3] = json.dumps(doc)
    lines[5] = lines[5][: len(lines[5]) // 2]  # line 6: cut short
    corrupt = tmp_path / "corrupt.jsonl"
    corrupt.write_text("\n".join(lines) + "\n")
    copy = f"{user}-corrupt"
    log.mark()
    done, result = import_(services, corrupt, copy, "--batch", "1")
    assert done.returncode == 1
    message = result["error"]["message"]
    assert "line 4, field importance" in message and "line 6" in message and "nothing was imported" in message
    assert "line 4, field importance" in done.stderr.decode()
    assert log.unchanged()
    assert memories_of(gateway, copy) == []


def test_running_the_same_import_again_adds_nothing(services, gateway, source, log, tmp_path):
    user, _ = source
    path, _ = export(services, tmp_path, user, "--include-vectors")
    copy = f"{user}-twice"
    done, first = import_(services, path, copy, "--batch", "2")
    assert done.returncode == 0, done.stderr.decode()
    assert first["batches"] == 3 and first["count"] == len(MEMORIES)
    log.mark()
    done, second = import_(services, path, copy, "--batch", "2")
    assert done.returncode == 0, done.stderr.decode()
    assert second["consistency_token"] == first["consistency_token"]  # the first run's answers
    assert log.unchanged()
    assert len(memories_of(gateway, copy, second["consistency_token"])) == len(MEMORIES)
    # Another batch size would make other batches under the same keys: refused, never doubled.
    done, third = import_(services, path, copy, "--batch", "3")
    assert done.returncode == 1 and "options of the first run" in third["error"]["message"]
    assert log.unchanged()


@pytest.mark.parametrize("body, field", [
    ({"embedding": [1.0] + [0.0] * 383, "embedding_model": "example/other-model"}, "embedding_model"),
    ({"embedding": [1.0] + [0.0] * 9, "embedding_model": MODEL}, "embedding"),
    ({"embedding": [1.0] + [0.0] * 511, "embedding_model": MODEL}, "embedding"),
], ids=["other model", "fewer dimensions", "more dimensions"])
def test_a_mismatching_vector_is_422_naming_the_field_and_appends_nothing(gateway, log, user_id, body, field):
    log.mark()
    one = gateway.post("/v1/memories", json={"text": "a fact", "user_id": user_id, **body})
    assert one.status_code == 422, one.text
    assert one.json()["error"]["code"] == "invalid_request" and one.json()["error"]["details"]["field"] == field
    batch = gateway.post("/v1/memories/batch", json={"memories": [
        {"text": "fine", "user_id": user_id}, {"text": "a fact", "user_id": user_id, **body}]})
    assert batch.status_code == 422, batch.text
    assert batch.json()["error"]["details"]["field"] == f"memories.1.{field}"
    assert field in batch.json()["error"]["message"]
    assert log.unchanged()


def test_a_memory_whose_expiry_passed_since_the_export_is_not_imported(services, gateway, source, tmp_path):
    user, _ = source
    path, _ = export(services, tmp_path, user)
    header, *rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["expires_at"] = "2024-01-01T00:00:00+00:00"  # as if it had expired between the export and now
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(json.dumps(doc) + "\n" for doc in [header, *rows]))
    done, result = import_(services, edited, f"{user}-later")
    assert done.returncode == 0, done.stderr.decode()
    assert (result["count"], result["expired_skipped"]) == (len(MEMORIES) - 1, 1)
    assert "1 memories of" in done.stderr.decode() and "expired since the export" in done.stderr.decode()
    texts = {m["memory"] for m in memories_of(gateway, f"{user}-later", result["consistency_token"])}
    assert rows[0]["memory"] not in texts and len(texts) == len(MEMORIES) - 1
