"""Memory intelligence end to end, offline (no LLM configured): the extraction worker turns
conversations into reconciled memories exactly once, the consolidation and forgetting
passes append what their policies decide, idempotently, and everything is in history.

The running stack has the three workers (as `recallstack up` does). Tests that need the
extraction worker stopped (to crash it or to run it --once) stop it and start it again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from adapters.kafka_log import partition_of
from domain.events import ConversationReceived, MemoryConsolidated, MemoryCreated
from settings import EVENTS_TOPIC
from tests.e2e.log_reader import opened
from tests.e2e.test_cli_json import recallstack

pytestmark = pytest.mark.e2e

ENTRY = Path(sys.executable).with_name("recallstack")
CONVERSATION = [
    {"role": "user", "content": "Hi there!"},
    {"role": "assistant", "content": "Hello! How can I help you today?"},
    {"role": "user", "content": "I prefer dark mode in every editor, with a 14pt font."},
    {"role": "user", "content": "We decided to deploy with GitHub Actions every night."},
    {"role": "user", "content": "Thanks!"},
]


def user_events(settings, user_id: str, since: int = 0) -> list:
    """Every committed event of the user's partition from offset `since`, decoded, of that user."""
    async def read():
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, isolation_level="read_committed",
                                    enable_auto_commit=False)
        await consumer.start()
        tp = TopicPartition(EVENTS_TOPIC, partition_of(user_id))
        try:
            end = (await consumer.end_offsets([tp]))[tp]
            consumer.assign([tp])
            consumer.seek(tp, since)
            found = []
            async with opened() as open_record:
                while await consumer.position(tp) < end:
                    batch = await consumer.getmany(tp, timeout_ms=1000)
                    for record in batch.get(tp, []):
                        if record.key == user_id.encode():
                            found.append(await open_record(record))
                    if not batch and await consumer.position(tp) < end:
                        # only transaction markers left: read_committed never returns them
                        break
            return found
        finally:
            await consumer.stop()
    return asyncio.run(read())


def log_end(settings, user_id: str) -> int:
    async def end():
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
        await consumer.start()
        try:
            tp = TopicPartition(EVENTS_TOPIC, partition_of(user_id))
            return (await consumer.end_offsets([tp]))[tp]
        finally:
            await consumer.stop()
    return asyncio.run(end())


def converse(gateway, user_id: str, messages=CONVERSATION, **extra) -> dict:
    answer = gateway.post("/v1/memories", json={"messages": messages, "user_id": user_id, "infer": True, **extra})
    assert answer.status_code == 202, answer.text
    return answer.json()


def memories(gateway, user_id: str, state: str = "active", **params) -> list[dict]:
    answer = gateway.get("/v1/memories", params={"user_id": user_id, "state": state, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]


def wait_for(check, timeout: float = 90.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _stopped(services, name: str):
    """The stack's `name` service stopped for a test, started again after it."""
    from infra import stack

    spec = stack.service_specs(services, (name,))
    processes = stack.table(services)
    stack.down(spec, processes)
    yield services
    stack.up(spec, processes)


@pytest.fixture
def extraction_stopped(services):
    yield from _stopped(services, "worker-extract")


@pytest.fixture
def consolidate_service_stopped(services):
    yield from _stopped(services, "worker-consolidate")


def test_a_conversation_becomes_reconciled_memories_with_causation(gateway, services, user_id):
    before = log_end(services, user_id)
    queued = converse(gateway, user_id, app_id="ide")
    assert queued["status"] == "queued" and queued["conversation_id"]
    found = wait_for(lambda: len(memories(gateway, user_id)) >= 2 and memories(gateway, user_id), what="facts")
    texts = [m["memory"] for m in found]
    assert any("dark mode" in t for t in texts) and any("GitHub Actions" in t for t in texts), texts
    assert not any(t.strip("!. ").lower() in ("hi there", "thanks") for t in texts), "greetings are not facts"
    assert not any("How can I help" in t for t in texts), "the assistant's words are not the user's facts"
    assert all(m["app_id"] == "ide" for m in found)
    assert all(m["metadata"]["source"]["conversation_id"] == queued["conversation_id"] for m in found)

    events = user_events(services, user_id, before)
    [conversation] = [e for e in events if isinstance(e, ConversationReceived)]
    created = [e for e in events if isinstance(e, MemoryCreated)]
    assert {e.memory_id for e in created} == {m["id"] for m in found}
    assert all(e.causation_id == conversation.event_id and e.correlation_id == conversation.correlation_id
               and e.actor == "worker:extract" for e in created)
    history = gateway.get(f"/v1/memories/{found[0]['id']}/history", params={"user_id": user_id}).json()
    assert history["history"][0]["actor"] == "worker:extract"

    # The same conversation again: every fact is a near-duplicate of a stored one (NONE).
    again = converse(gateway, user_id, app_id="ide")
    wait_for(lambda: any(isinstance(e, ConversationReceived) and e.conversation_id == again["conversation_id"]
                         for e in user_events(services, user_id, before)), what="the second conversation")
    time.sleep(3)  # the worker had time to decide; NONE appends nothing
    assert len(memories(gateway, user_id)) == len(found)


def _run_worker(settings, *argv, env=None, log: Path | None = None) -> subprocess.Popen:
    """`recallstack worker ...` as a process; a long-running one logs to `log` (a pipe
    nobody reads would fill and block it)."""
    command = [str(ENTRY)] if ENTRY.exists() else [sys.executable, "-m", "cli.main"]
    out = open(log, "w") if log else subprocess.PIPE
    return subprocess.Popen([*command, "worker", *argv], env={**os.environ, "RECALLSTACK_HOME": str(settings.home),
                                                             **(env or {})},
                            stdout=out, stderr=subprocess.STDOUT if log else subprocess.PIPE, text=True)


def test_dry_run_appends_nothing_and_a_crash_resumes_without_duplicates(gateway, extraction_stopped, user_id,
                                                                      tmp_path):
    settings = extraction_stopped
    before = log_end(settings, user_id)
    topics = ["espresso with oat milk", "the staging database on port 5433", "Rust for the CLI",
              "meetings only after 10am", "the deploy key in 1Password", "tabs, never spaces"]
    for i, topic in enumerate(topics):
        converse(gateway, user_id, [{"role": "user", "content": f"Remember that I always want {topic}."}],
                 run_id=f"run-{i}")
    queued = log_end(settings, user_id)

    code, report, err = recallstack(settings, "worker", "extract", "--dry-run", "--json")
    assert code == 0, err
    assert report["dry_run"] and report["events_appended"] == 0 and report["conversations"] >= len(topics)
    assert any(topic in d["fact"] for d in report["decisions"] for topic in topics), report["decisions"]
    assert log_end(settings, user_id) == queued, "a dry run appends nothing"

    # A worker killed (SIGKILL) while it works, then a run to the end: every conversation's
    # facts are in the log exactly once.
    worker = _run_worker(settings, "extract", log=tmp_path / "worker.log")
    try:
        wait_for(lambda: any(isinstance(e, MemoryCreated) for e in user_events(settings, user_id, queued)),
                 timeout=120, what="the first extracted fact")
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    code, report, err = recallstack(settings, "worker", "extract", "--once", "--json")
    assert code == 0, err
    created = [e for e in user_events(settings, user_id, before) if isinstance(e, MemoryCreated)]
    assert len(created) == len({e.memory_id for e in created}) == len(topics), [e.text for e in created]
    assert {e.run_id for e in created} == {f"run-{i}" for i in range(len(topics))}

    # Run again: nothing left to do, nothing appended.
    end = log_end(settings, user_id)
    code, report, err = recallstack(settings, "worker", "extract", "--once", "--json")
    assert code == 0 and report["events_appended"] == 0, (report, err)
    assert log_end(settings, user_id) == end


def _lifecycle_config(tmp_path, **values) -> dict:
    path = tmp_path / "lifecycle.yaml"
    path.write_text(json.dumps({"default": values}))  # JSON is YAML
    return {"RECALLSTACK_LIFECYCLE_CONFIG": str(path)}


def _worker_json(settings, env, *argv) -> dict:
    process = _run_worker(settings, *argv, "--json", env=env)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return json.loads(out)


def _add(gateway, user_id, text, **extra) -> str:
    answer = gateway.post("/v1/memories", json={"text": text, "user_id": user_id, **extra})
    assert answer.status_code == 202, answer.text
    return answer.json()["consistency_token"]


def test_consolidation_merges_related_memories_once_and_archives_them(gateway, services, user_id, tmp_path):
    env = _lifecycle_config(tmp_path, consolidate_min_age_days=0, similarity=0.8)
    related = ["I like green tea in the morning", "I like green tea every morning",
               "In the morning I like to drink green tea"]
    for text in related + ["The build server runs Ubuntu 22.04"]:
        token = _add(gateway, user_id, text)
    _add(gateway, user_id, "I like green tea at breakfast", metadata={"pinned": True})
    gateway.get("/v1/memories", params={"user_id": user_id, "consistency_token": token})
    before = log_end(services, user_id)

    dry = _worker_json(services, env, "consolidate", "--dry-run", "--user", user_id)
    assert dry["dry_run"] and dry["events_appended"] == 0 and dry["counts"] == {"consolidate": 1}, dry
    assert log_end(services, user_id) == before

    done = _worker_json(services, env, "consolidate", "--once", "--user", user_id)
    assert done["counts"] == {"consolidate": 1} and done["events_appended"] == 1, done
    [action] = done["actions"]
    assert len(action["memory_ids"]) == 3, "the pinned memory and the unrelated one stay out"
    summary_id = action["summary_id"]
    wait_for(lambda: len(memories(gateway, user_id, "archived")) == 3, what="archived sources")
    active = {m["id"]: m for m in memories(gateway, user_id)}
    assert summary_id in active and "green tea" in active[summary_id]["memory"]
    assert active[summary_id]["metadata"] == {"consolidated_from": 3}
    found = gateway.post("/v1/memories/search", json={"query": "green tea", "user_id": user_id,
                                                       "include_archived": True, "limit": 10}).json()["results"]
    assert {m["id"] for m in found} >= set(action["memory_ids"]), "archived memories stay retrievable"
    history = gateway.get(f"/v1/memories/{action['memory_ids'][0]}/history", params={"user_id": user_id}).json()
    assert [h["event"] for h in history["history"]][-1] == "MemoryConsolidated"

    again = _worker_json(services, env, "consolidate", "--once", "--user", user_id)
    assert again["events_appended"] == 0 and again["counts"] == {}, again
    summaries = [e for e in user_events(services, user_id, before) if isinstance(e, MemoryConsolidated)]
    assert [e.memory_id for e in summaries] == [summary_id]


def test_a_consolidation_crash_resumes_without_a_second_summary(services, gateway, tmp_path):
    """Two users in one pass; the publisher fails after the first user's summary is appended
    (a crash mid-run). The next pass appends the second user's only."""
    import bootstrap
    from consolidation.policies import LifecycleConfig

    users = [f"crash-{os.urandom(4).hex()}" for _ in range(2)]
    for user in users:
        for text in ("Bob's favourite editor is Helix", "Bob really likes the Helix editor"):
            token = _add(gateway, user, text)
        gateway.get("/v1/memories", params={"user_id": user, "consistency_token": token})

    async def run_twice():
        lifecycle, close = await bootstrap.open_lifecycle("consolidate")
        lifecycle.config = LifecycleConfig.from_mapping({"default": {"consolidate_min_age_days": 0,
                                                                     "similarity": 0.7}})
        real = lifecycle.publisher.publish
        calls = []

        async def crash_after_first(events):
            if calls:
                raise RuntimeError("simulated crash")
            calls.append(events)
            return await real(events)
        try:
            lifecycle.publisher.publish = crash_after_first
            with pytest.raises(RuntimeError, match="simulated crash"):
                await lifecycle.run("consolidate", users=users)
            lifecycle.publisher.publish = real
            return await lifecycle.run("consolidate", users=users)
        finally:
            await close()

    second = asyncio.run(run_twice())
    assert second.appended == 1 and [a.user_id for a in second.actions] == [users[1]], second.as_dict()
    for user in users:
        summaries = [e for e in user_events(services, user) if isinstance(e, MemoryConsolidated)]
        assert len(summaries) == 1, (user, summaries)


def test_forgetting_hides_decayed_memories_never_pinned_ones_and_restore_undoes_it(gateway, services, user_id,
                                                                                   tmp_path):
    # A half-life of under a second: a few seconds old is forgotten; nothing is old enough to delete.
    env = _lifecycle_config(tmp_path, half_life_days=0.00001, forget_below=0.5, delete_below=0.0,
                            delete_min_age_days=1000)
    _add(gateway, user_id, "The office wifi password rotates monthly")
    token = _add(gateway, user_id, "Deploys need two approvals", metadata={"pinned": True})
    gateway.get("/v1/memories", params={"user_id": user_id, "consistency_token": token})
    time.sleep(2)
    before = log_end(services, user_id)

    dry = _worker_json(services, env, "forget", "--dry-run", "--user", user_id)
    assert dry["counts"] == {"forget": 1} and log_end(services, user_id) == before, dry
    done = _worker_json(services, env, "forget", "--once", "--user", user_id)
    assert done["counts"] == {"forget": 1} and done["events_appended"] == 1, done
    [forgotten_id] = done["actions"][0]["memory_ids"]
    wait_for(lambda: [m["id"] for m in memories(gateway, user_id, "forgotten")] == [forgotten_id], what="forgotten")
    assert [m["memory"] for m in memories(gateway, user_id)] == ["Deploys need two approvals"], "pinned stays"
    assert "below forget_below 0.5" in done["actions"][0]["reason"]

    again = _worker_json(services, env, "forget", "--once", "--user", user_id)
    assert again["events_appended"] == 0, "already forgotten: nothing new"

    from recallstack import Client, Conflict

    with Client(services.gateway_url, user_id=user_id) as sdk:  # restore through the SDK, as a user would
        assert [m.id for m in sdk.get_all(state="forgotten").results] == [forgotten_id]
        sdk.restore(forgotten_id)
        assert {m.id for m in sdk.get_all().results} >= {forgotten_id}, "the SDK reads its own write"
        with pytest.raises(Conflict, match="is active"):
            sdk.restore(forgotten_id)
    history = gateway.get(f"/v1/memories/{forgotten_id}/history", params={"user_id": user_id}).json()["history"]
    assert [h["event"] for h in history] == ["MemoryCreated", "MemoryForgotten", "MemoryRestored"]
    assert history[1]["actor"] == "worker:forget"


def test_extraction_with_an_llm_against_a_canned_server_and_its_offline_fallback(gateway, extraction_stopped,
                                                                                 user_id):
    """The LLM path end to end, against a local OpenAI-compatible test server that returns
    canned JSON (no model runs here): its facts become the memories; when it answers
    malformed JSON every time, the conversation is extracted offline instead, and says so."""
    from tests.integration.test_llm_canned_server import CannedChatServer

    settings = extraction_stopped
    server = CannedChatServer()
    env = {"RECALLSTACK_LLM_BASE_URL": server.base_url, "RECALLSTACK_LLM_MODEL": "canned-model",
           "RECALLSTACK_LLM_TIMEOUT_MS": "3000", "RECALLSTACK_LLM_MAX_RETRIES": "1"}
    try:
        server.replies = [json.dumps({"facts": [
            {"text": "The user's cat is called Miso", "message_indexes": [0], "importance": 0.8,
             "entities": [{"name": "Miso", "type": "pet"}], "relations": [], "categories": ["personal"]},
            {"text": "The user works night shifts at the hospital", "message_indexes": [0], "importance": 0.6,
             "entities": [], "relations": [], "categories": ["personal"]}]})]
        before = log_end(settings, user_id)
        converse(gateway, user_id, [{"role": "user", "content": "my cat Miso keeps me company on night shifts"}])
        report = _worker_json(settings, env, "extract", "--once")
        assert report["offline_fallbacks"] == 0 and report["actions"].get("ADD", 0) >= 2, report
        created = [e for e in user_events(settings, user_id, before) if isinstance(e, MemoryCreated)]
        assert sorted(e.text for e in created) == ["The user works night shifts at the hospital",
                                                   "The user's cat is called Miso"]
        assert {e.actor for e in created} == {"worker:extract"}
        assert sorted(round(e.importance, 4) for e in created) == [0.6, 0.8]  # Avro float
        assert any("Miso" in json.dumps(r) for r in server.requests), "the conversation went to the model"

        server.replies = ["this is not JSON at all"]
        sent = len(server.requests)
        before = log_end(settings, user_id)
        converse(gateway, user_id, [{"role": "user", "content": "I always review pull requests before lunch."}])
        report = _worker_json(settings, env, "extract", "--once")
        assert report["offline_fallbacks"] == 1, report
        assert len(server.requests) > sent, "the model was asked (and retried) first"
        created = [e for e in user_events(settings, user_id, before) if isinstance(e, MemoryCreated)]
        assert [e.text for e in created] == ["I always review pull requests before lunch."]
        assert created[0].actor == "worker:extract(offline-fallback)"
    finally:
        server.close()


def test_the_running_consolidation_worker_acts_on_its_timer_for_users_that_changed(
        gateway, consolidate_service_stopped, user_id, tmp_path):
    """The faust-streaming app itself: its agent marks the user as changed in the activity
    table, its timer runs the pass. Only app `faust-e2e` has a zero minimum age, so the other
    tests' memories are left alone."""
    settings = consolidate_service_stopped
    path = tmp_path / "lifecycle.yaml"
    path.write_text("apps:\n  faust-e2e: {consolidate_min_age_days: 0, similarity: 0.8}\n")
    for text in ("I like green tea in the morning", "I like green tea every morning"):
        _add(gateway, user_id, text, app_id="faust-e2e")
    worker = _run_worker(settings, "consolidate", env={"RECALLSTACK_LIFECYCLE_CONFIG": str(path),
                                                       "RECALLSTACK_CONSOLIDATE_INTERVAL_S": "2"},
                         log=tmp_path / "worker.log")
    try:
        found = wait_for(lambda: [m for m in memories(gateway, user_id) if "consolidated_from" in m["metadata"]],
                         timeout=150, what=f"the timer's summary (log: {tmp_path / 'worker.log'})")
        assert found[0]["app_id"] == "faust-e2e"
        assert len(memories(gateway, user_id, "archived")) == 2
        assert any(isinstance(e, MemoryConsolidated) and e.actor == "worker:consolidate"
                   for e in user_events(settings, user_id))
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
