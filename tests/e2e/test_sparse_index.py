"""The sparse index end to end, with the services running (projector-sparse among them):
kill -9 of its projector at random points during 10,000 events then the index equals the log;
`recallstack replay --projection sparse` while a reader keeps searching, the live projector
following the new version, `status` and `digest` seeing it."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid

import pytest

from adapters import sparse_layout, sparse_schema
from adapters.kafka_log import EventPublisher
from adapters.sparse_index import SparseIndex
from domain.events import MemoryCreated, MemoryDeleted, MemoryUpdated, utcnow
from projectors.lag import projector_lag
from settings import EVENTS_TOPIC
from tests.e2e.outage import kill_9_while

pytestmark = pytest.mark.e2e

EVENTS = 10_000
# The shared log's other read models apply these too: a vector they accept (the embedder's
# model and dimension), or the Postgres projector dead-letters every one of them.
MODEL, VECTOR = "sentence-transformers/all-MiniLM-L6-v2", (1.0,) + (0.0,) * 383


def stream(bootstrap: str, users: list[str], expected: dict, last: dict) -> None:
    """10,000 events over `users`: creates, and every 8th an update, every 20th a delete of an
    earlier memory of the same user. `expected`: memory id -> its final text (None: deleted);
    `last`: partition -> the highest offset appended."""
    rng = random.Random(3)
    mine: dict[str, list[str]] = {u: [] for u in users}

    async def run():
        publisher = EventPublisher(bootstrap, timeout_s=30)
        await publisher.start()
        try:
            for start in range(0, EVENTS, 250):
                events = []
                for i in range(start, start + 250):
                    user = users[i % len(users)]
                    alive = [m for m in mine[user] if expected[m] is not None]
                    if i % 8 == 7 and alive:
                        memory_id = rng.choice(alive)
                        expected[memory_id] = f"sparse crash fact {i} updated u{uuid.uuid4().hex[:10]}"
                        events.append(MemoryUpdated(user_id=user, actor="worker:crash-test", memory_id=memory_id,
                                                    text=expected[memory_id]))
                    elif i % 20 == 19 and alive:
                        memory_id = rng.choice(alive)
                        expected[memory_id] = None
                        events.append(MemoryDeleted(user_id=user, actor="worker:crash-test", memory_id=memory_id))
                    else:
                        memory_id = str(uuid.uuid4())
                        expected[memory_id] = f"sparse crash fact {i} u{uuid.uuid4().hex[:10]}"
                        mine[user].append(memory_id)
                        events.append(MemoryCreated(user_id=user, actor="worker:crash-test", memory_id=memory_id,
                                                    text=expected[memory_id], embedding=VECTOR,
                                                    embedding_model=MODEL, happened_at=utcnow()))
                token = await publisher.publish(events)
                for partition, offset in token.offsets:
                    last[partition] = max(offset, last.get(partition, -1))
        finally:
            await publisher.stop()

    asyncio.run(run())


def documents(settings, users: list[str]) -> dict[str, tuple[str, str]]:
    """memory id -> (state, text) of every document of `users` in the live version."""
    version = sparse_layout.read_live(settings.sparse_dir)
    index = sparse_schema.open_index(sparse_layout.version_dir(settings.sparse_dir, version))
    index.reload()
    searcher = index.searcher()
    out = {}
    for user in users:
        query = sparse_schema.term("user_id", user)
        total = searcher.search(query, limit=1, count=True).count
        for _score, address in searcher.search(query, limit=max(total, 1), count=False).hits:
            doc = sparse_schema.memory_from_stored(searcher.doc(address).to_dict())
            assert doc.memory_id not in out, f"{doc.memory_id} has two documents"
            out[doc.memory_id] = (doc.state, doc.text)
    return out


def wait_caught_up(settings, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while (lag := asyncio.run(projector_lag(settings.kafka_bootstrap, "sparse")))["behind"] > 0:
        assert time.monotonic() < deadline, f"projector-sparse still {lag['behind']} events behind"
        time.sleep(0.5)


def test_kill_9_during_a_stream_then_the_index_equals_the_log(settings, services):
    process = "projector-sparse"
    users = [f"sparse-crash-{uuid.uuid4().hex[:8]}-{n}" for n in range(20)]
    expected: dict[str, str | None] = {}
    last: dict[int, int] = {}
    producer = threading.Thread(target=stream, args=(settings.kafka_bootstrap, users, expected, last))
    began = time.monotonic()
    producer.start()
    kills = kill_9_while(producer, settings, process, seed=17)  # mid-batch, mid-commit, mid-merge
    producer.join()
    wait_caught_up(settings)
    seconds = time.monotonic() - began
    assert len(expected) > 0 and kills >= 3

    docs = documents(settings, users)
    assert set(docs) == set(expected)
    live = {m: text for m, text in expected.items() if text is not None}
    assert {m: text for m, (state, text) in docs.items() if state == "active"} == live
    assert all(docs[m] == ("deleted", "") for m, text in expected.items() if text is None), "a deleted text is left"
    # Every live memory is found by its own word, through the reader the query API uses.
    reader = SparseIndex(settings.sparse_dir)
    reader.refresh()
    for memory_id, text in live.items():
        user = users[int(text.split()[3]) % len(users)]  # event i was of user i % 20, and so is its memory
        hits = [i for i, _ in reader.search(user, [text.rsplit(" ", 1)[1]], [], {}, False, None, 5)]
        assert hits == [memory_id], (memory_id, text, hits)
    positions = reader.positions(EVENTS_TOPIC)
    assert all(positions.get(p, -1) >= o for p, o in last.items()), (positions, last)
    print(f"{kills} kill -9 of projector-sparse during {EVENTS} events ({len(live)} live, "
          f"{len(expected) - len(live)} deleted): the index equals the log; {seconds:.0f} s in all")


def test_replay_while_a_reader_keeps_searching(gateway, settings, user_id):
    texts = [f"sparse replay fact {n}: the user likes {word}" for n, word in
             enumerate(["tea", "rust", "jazz", "hiking", "chess", "sushi", "linux", "vim"])]
    answer = gateway.post("/v1/memories/batch", json={"memories": [
        {"text": text, "user_id": user_id, "infer": False} for text in texts]})
    assert answer.status_code == 202, answer.text
    reader = SparseIndex(settings.sparse_dir)
    deadline = time.monotonic() + 60
    while not reader.available() or len(reader.search(user_id, ["likes"], [], {}, False, None, 20)) < len(texts):
        assert time.monotonic() < deadline, "projector-sparse did not index the memories"
        time.sleep(0.2)
    before = reader.version()

    problems: list[str] = []
    searches = [0]
    stop = threading.Event()

    def keep_searching():
        searcher = SparseIndex(settings.sparse_dir)
        while not stop.is_set():
            try:
                found = searcher.search(user_id, ["likes"], ["Sushi"], {}, False, None, 20)
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                problems.append(f"{type(exc).__name__}: {exc}")
                continue
            searches[0] += 1
            if len(found) != len(texts):
                problems.append(f"{len(found)} results instead of {len(texts)}")

    searcher = threading.Thread(target=keep_searching)
    searcher.start()
    try:
        done = subprocess.run([sys.executable, "-m", "cli.main", "replay", "--projection", "bm25", "--keep-old",
                               "--json"], env={**os.environ, "RECALLSTACK_HOME": str(settings.home)},
                              capture_output=True, text=True, check=False, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        summary = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        stop.set()
        searcher.join()
    assert summary["projection"] == "sparse" and summary["from_version"] == before
    assert summary["to_version"] > before and summary["events"] > 0
    assert problems == [] and searches[0] > 0, problems[:5]
    assert reader.version() == summary["to_version"]
    print(f"replay of the sparse index: {summary['events']:,} events at {summary['events_per_s']:,}/s, "
          f"{searches[0]} searches meanwhile, none failed or short")

    # The same log, the same content: the old version (nothing wrote it since) digests like the new one.
    def digest(version: int) -> dict:
        code = subprocess.run([sys.executable, "-m", "cli.main", "digest", "--projection", "sparse", "--version",
                               str(version), "--json"], env={**os.environ, "RECALLSTACK_HOME": str(settings.home)},
                              capture_output=True, text=True, check=False, timeout=300)
        assert code.returncode == 0, code.stderr[-2000:]
        return json.loads(code.stdout)["digests"][0]

    old, new = digest(before), digest(summary["to_version"])
    assert old["digest"] == new["digest"] and new["parts"]["memories"]["rows"] >= len(texts)
    from projectors.sparse_versions import SparseVersions

    asyncio.run(SparseVersions(settings.sparse_dir).drop(before))

    # The live projector follows the new version: a write after the switch is found there.
    late = gateway.post("/v1/memories", json={"text": "sparse replay fact: the user likes kayaking",
                                              "user_id": user_id, "infer": False})
    assert late.status_code == 202, late.text
    deadline = time.monotonic() + 30
    while not reader.search(user_id, ["kayaking"], [], {}, False, None, 5):
        assert time.monotonic() < deadline, "the live projector did not follow the new version"
        time.sleep(0.2)

    status = subprocess.run([sys.executable, "-m", "cli.main", "status", "--json"],
                            env={**os.environ, "RECALLSTACK_HOME": str(settings.home)}, capture_output=True,
                            text=True, check=False, timeout=120)
    doc = json.loads(status.stdout)
    row = next(r for r in doc["processes"] if r["name"] == "projector-sparse")
    assert row["state"] == "running" and row["ready"], row
    lag = next(r for r in doc["lag"] if r["projection"] == "sparse")
    assert lag["error"] is None and lag["log_records"] > 0, lag
