"""Backup -> wipe -> restore -> replay gives identical digests, against real servers.

Self-contained: the log lives in two throwaway Kafka brokers started here on free ports
(infra.kafka_server.scratch_broker: the same jars and KRaft config as the stack's broker),
never in the stack's topics. A scripted log (creates with and without entities, text and
metadata updates, a delete, a scope delete, a consolidation, forget and restore, access
events, an aborted transaction, an undecodable record, a dead letter) is appended to the
source broker (the events sealed with per-user data keys, as the services write them) and
projected into a pinned version of each read model; the log is backed up,
restored into the second, empty broker ("wiped": a cluster that never held it), projected
into another pinned version, and the two versions' digests must be equal.

The read-model versions are kept apart from the stack's: Postgres in a database of its own
(created and dropped here), Redis in another logical database under random version numbers,
Neo4j under a projection name of its own with random version numbers (labels Memory_v<n>).
Everything created is dropped afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import uuid
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import neo4j
import numpy as np
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from adapters import kafka_codec, log_backup, postgres
from adapters.kafka_log import EventPublisher, ensure_topics, partition_of
from adapters.key_store import Keyring, KeyStore
from domain import sealing
from domain.events import (Entity, MemoryAccessed, MemoryConsolidated, MemoryCreated, MemoryDeleted, MemoryForgotten,
                           MemoryRestored, MemoryScopeDeleted, MemoryUpdated, Relation)
from infra.kafka_server import scratch_broker
from projectors import neo4j_digest, pg_digest, redis_digest
from projectors.neo4j_versions import Neo4jVersions
from projectors.pg_versions import PgVersions
from projectors.redis_versions import RedisVersions
from projectors.runner import ProjectorRunner
from settings import ACCESS_TOPIC, DLQ_TOPIC, EVENTS_TOPIC
from tests.conftest import REPO

pytestmark = pytest.mark.integration

REDIS_DB = 13  # not the stack's (0): a replay of the stack never sees these versions
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)


# ---- the brokers and the scripted log ----------------------------------------------------------

@pytest.fixture(scope="module")
def brokers(tmp_path_factory):
    root = tmp_path_factory.mktemp("brokers")
    with ExitStack() as stack:
        source = stack.enter_context(scratch_broker(root / "source"))
        target = stack.enter_context(scratch_broker(root / "target"))
        yield {"source": source, "target": target}


def _vector(rng) -> tuple[float, ...]:
    v = rng.normal(size=384).astype(np.float32)
    return tuple(float(x) for x in v / np.linalg.norm(v))


def scripted_log(run: str) -> tuple[list[list], list[MemoryAccessed]]:
    """Groups of events (each group one transaction) covering every change a memory can go
    through, for four users; and the access events."""
    rng = np.random.default_rng(7)
    groups, accesses = [], []
    for u in range(4):
        user = f"bk-{run}-{u}"
        actor = f"user:{user}"
        made = []
        for i in range(7):
            with_graph = i % 2 == 0
            made.append(MemoryCreated(
                user_id=user, actor=actor, memory_id=str(uuid.uuid4()), embedding=_vector(rng), embedding_model="m",
                text=f"{user} note {i}: Alice works at Acme on project Falcon in Berlin" if with_graph
                else f"{user} note {i}: prefers dark roast coffee and vim keybindings",
                happened_at=T0 + timedelta(days=i), occurred_at=T0 + timedelta(days=i, hours=1),
                agent_id="scratch" if i == 6 else ("coder" if i % 3 == 0 else None), metadata={"i": i, "tags": ["a"]},
                categories=("work",) if with_graph else (), importance=0.25 * (i % 4) if i % 2 else None,
                entities=(Entity("Alice", "person"), Entity("Acme", "org")) if with_graph and i < 4 else (),
                relations=(Relation("Alice", "works at", "Acme"),) if with_graph and i < 4 else ()))
        groups.append(made[:4])  # several events in one transaction
        groups += [[m] for m in made[4:]]
        at = T0 + timedelta(days=30)
        groups.append([MemoryUpdated(user_id=user, actor=actor, memory_id=made[0].memory_id, occurred_at=at,
                                     text=f"{user}: Alice moved to Globex in Paris", embedding=_vector(rng),
                                     embedding_model="m", metadata={"i": 0, "moved": True}, reason="corrected")])
        groups.append([MemoryUpdated(user_id=user, actor=actor, memory_id=made[1].memory_id, occurred_at=at,
                                     metadata={"i": 1, "pinned": True}, categories=("home",), importance=0.9)])
        groups.append([MemoryDeleted(user_id=user, actor=actor, memory_id=made[2].memory_id,
                                     occurred_at=at + timedelta(minutes=1))])
        groups.append([MemoryConsolidated(
            user_id=user, actor="worker:consolidate", memory_id=str(uuid.uuid4()), occurred_at=at + timedelta(hours=1),
            source_memory_ids=(made[3].memory_id, made[4].memory_id), text=f"{user}: coffee and Acme notes",
            embedding=_vector(rng), embedding_model="m", reason="similar", metadata={"summary": True},
            happened_at=T0 + timedelta(days=3), entities=(Entity("Acme", "org"),))])
        groups.append([MemoryForgotten(user_id=user, actor="worker:forget", memory_id=made[5].memory_id,
                                       reason="decayed", score=0.01, occurred_at=at + timedelta(hours=2))])
        if u % 2:
            groups.append([MemoryRestored(user_id=user, actor=actor, memory_id=made[5].memory_id,
                                          occurred_at=at + timedelta(hours=3))])
        groups.append([MemoryScopeDeleted(user_id=user, actor=actor, agent_id="scratch",
                                          occurred_at=at + timedelta(hours=4))])
        for n in range(3):
            accesses.append(MemoryAccessed(user_id=user, actor=actor, source="search",
                                           memory_ids=(made[0].memory_id, made[1].memory_id, made[5].memory_id)[n:],
                                           occurred_at=at + timedelta(hours=5 + n)))
    return groups, accesses


@pytest.fixture(scope="module")
async def keyring(pg):
    """Per-user data keys in a key store of the test's own database (its own master key)."""
    keys = Keyring(KeyStore(pg.dsn, sealing.new_key_material()))
    yield keys
    await keys.store.close()


@pytest.fixture(scope="module")
async def source_log(brokers, keyring):
    """The scripted log in the source broker; what a reader should find there."""
    source = brokers["source"]
    await ensure_topics(source)
    run = uuid.uuid4().hex[:6]
    groups, accesses = scripted_log(run)
    events = EventPublisher(source, timeout_s=15, transactional_id=f"bk-test-{run}", keys=keyring)
    access = EventPublisher(source, topic=ACCESS_TOPIC, timeout_s=15, transactional_id=f"bk-test-access-{run}",
                            keys=keyring)
    try:
        for group in groups:
            await events.publish(group)
        await access.publish(accesses)
    finally:
        await events.stop()
        await access.stop()
    # An aborted transaction: not part of the log, never in a backup.
    aborted = MemoryCreated(user_id=f"bk-{run}-0", actor="user:x", memory_id=str(uuid.uuid4()), text="never committed",
                            embedding=(1.0,) * 384, embedding_model="m", happened_at=T0)
    producer = AIOKafkaProducer(bootstrap_servers=source, transactional_id=f"bk-test-abort-{run}", acks="all",
                                enable_idempotence=True)
    await producer.start()
    try:
        await producer.begin_transaction()
        value, headers = kafka_codec.encode(aborted)
        await producer.send_and_wait(EVENTS_TOPIC, value, key=aborted.user_id.encode(), headers=headers)
        await producer.abort_transaction()
    finally:
        await producer.stop()
    # Opaque bytes: an undecodable record in the log (projectors dead-letter it) and a dead letter.
    plain = AIOKafkaProducer(bootstrap_servers=source, acks="all", enable_idempotence=True)
    await plain.start()
    try:
        await plain.send_and_wait(EVENTS_TOPIC, b"\x00\xffnot avro", key=f"bk-{run}-1".encode(),
                                  headers=[("rs-schema", b"0000"), ("empty", b"")])
        await plain.send_and_wait(DLQ_TOPIC, b"\x01original bytes", key=b"someone",
                                  headers=[("rs-dlq-error", b'{"error": "scripted"}')], timestamp_ms=1_700_000_000_000)
    finally:
        await plain.stop()
    expected: dict[int, int] = {}
    for group in groups:
        for event in group:
            p = partition_of(event.user_id)
            expected[p] = expected.get(p, 0) + 1
    p = partition_of(f"bk-{run}-1")
    expected[p] = expected.get(p, 0) + 1
    return {"run": run, "events_per_partition": expected, "accesses": len(accesses), "aborted": aborted,
            "creates": sum(isinstance(e, (MemoryCreated, MemoryConsolidated)) for g in groups for e in g),
            "users": sorted({e.user_id for g in groups for e in g})}


# ---- the read models (pinned versions apart from the stack's) -----------------------------------

@pytest.fixture(scope="module")
async def pg(settings):
    name = f"rs_backup_test_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(settings.pg_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(settings.pg_dsn)
    dsn = urlunsplit(parts._replace(path=f"/{name}"))
    pool = None
    try:
        await postgres.migrate(dsn, 384)  # the extensions, and version 1 (live)
        pool = await postgres.create_pool(dsn, min_size=1, max_size=4)
        yield PgVersions(pool, dsn, 384)
    finally:
        if pool is not None:
            await pool.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="module")
async def cache(settings):
    parts = urlsplit(settings.redis_url)
    url = urlunsplit(parts._replace(path=f"/{REDIS_DB}"))
    client = aioredis.Redis.from_url(url, socket_timeout=10)
    versions = RedisVersions(client, live_key=f"rs:test-live-{uuid.uuid4().hex[:8]}")
    versions.url = url
    versions.made = random.sample(range(10**6, 10**9), 2)
    try:
        yield versions
    finally:
        for version in versions.made:
            keys = [k async for k in client.scan_iter(match=f"rs:v{version}:*", count=1000)]
            if keys:
                await client.delete(*keys)
        await client.delete(versions.live_key)
        await client.aclose()


@pytest.fixture(scope="module")
async def graph(settings):
    driver = neo4j.AsyncGraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password),
                                             notifications_min_severity="OFF")
    versions = Neo4jVersions(driver, projection=f"neo4j_test_backup_{uuid.uuid4().hex[:8]}")
    labels = {r["label"] for r in (await driver.execute_query("CALL db.labels() YIELD label RETURN label")).records}
    versions.made = [v for v in random.sample(range(10_000, 100_000), 20) if f"Memory_v{v}" not in labels][:2]
    try:
        yield versions
    finally:
        for version in versions.made:
            await versions.drop(version)
        await driver.execute_query("MATCH (n) WHERE (n:ReadModelLive OR n:ReadModelVersion) AND n.projection = $p"
                                   " DELETE n", p=versions.name)
        await driver.close()


async def project(versions, version: int, bootstrap: str, keys: Keyring) -> None:
    """The whole log (events, then accesses) into `version`, as a replay reads it."""
    await versions.create_version(version)
    for topic in (EVENTS_TOPIC, ACCESS_TOPIC):
        runner = ProjectorRunner(versions.projection(version), bootstrap, topic, replay=True, max_batch=50, keys=keys)
        await runner.start()
        try:
            partitions = list(runner.consumer.assignment())
            ends = await runner.consumer.end_offsets(partitions)
            deadline = asyncio.get_running_loop().time() + 60
            while any([await runner.consumer.position(tp) < ends[tp] for tp in partitions]):
                await runner.poll_once(timeout_ms=200)
                assert asyncio.get_running_loop().time() < deadline, "projection did not reach the log's end"
        finally:
            await runner.close()


async def digests(pg_versions, cache_versions, graph_versions, versions: dict[str, int]) -> dict[str, dict]:
    return {
        "postgres": await pg_digest.digest(pg_versions.pool, versions["postgres"]),
        "redis": await redis_digest.digest(cache_versions.client, versions["redis"]),
        "neo4j": await neo4j_digest.digest(graph_versions.driver, versions["neo4j"]),
    }


@pytest.fixture(scope="module")
async def backed_up(brokers, source_log, pg, cache, graph, keyring, tmp_path_factory):
    """The source log projected into the first versions, then backed up."""
    source = brokers["source"]
    first = {"postgres": 1, "redis": cache.made[0], "neo4j": graph.made[0]}
    await project(pg, first["postgres"], source, keyring)
    await project(cache, first["redis"], source, keyring)
    await project(graph, first["neo4j"], source, keyring)
    directory = tmp_path_factory.mktemp("backups") / "log"
    seen = []
    # Small chunks: a partition spans several files, restored in order.
    manifest = await log_backup.backup(source, directory, on_progress=lambda p: seen.append(p.records),
                                       chunk_records=10)
    return {"directory": directory, "manifest": manifest, "versions": first, "progress": seen}


async def end_offsets(bootstrap: str, topics=(EVENTS_TOPIC, ACCESS_TOPIC, DLQ_TOPIC)) -> dict:
    return await log_backup.target_offsets(bootstrap, list(topics))


async def read_all(bootstrap: str, topic: str) -> list:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not parts:
            parts = [TopicPartition(topic, p) for p in
                     sorted((await consumer._client.fetch_all_metadata()).partitions_for_topic(topic))]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        out = []
        while any([await consumer.position(tp) < ends[tp] for tp in parts]):
            for ms in (await consumer.getmany(timeout_ms=500)).values():
                out += ms
        return out
    finally:
        await consumer.stop()


# ---- the tests -------------------------------------------------------------------------------

async def test_the_manifest_counts_every_committed_record_per_partition(brokers, source_log, backed_up):
    manifest, directory = backed_up["manifest"], backed_up["directory"]
    events = manifest["topics"][EVENTS_TOPIC]
    assert events["partitions"] == 12
    counts = {d["partition"]: d["records"] for d in events["partition_detail"]}
    # The aborted record is not there.
    assert counts == {p: source_log["events_per_partition"].get(p, 0) for p in range(12)}
    assert manifest["topics"][ACCESS_TOPIC]["records"] == source_log["accesses"]
    dlq = await read_all(brokers["source"], DLQ_TOPIC)  # the scripted letter and what the projections dead-lettered
    assert manifest["topics"][DLQ_TOPIC]["records"] == len(dlq) >= 1
    for topic, entry in manifest["topics"].items():
        for detail in entry["partition_detail"]:
            files = [f for f in manifest["files"] if f["topic"] == topic and f["partition"] == detail["partition"]]
            assert sum(f["records"] for f in files) == detail["records"]
            if detail["records"]:
                assert 0 <= detail["first_offset"] <= detail["last_offset"] < detail["log_end_offset"]
                # Transaction markers took offsets: a committed partition's last offset is not records - 1.
                if topic == EVENTS_TOPIC:
                    assert detail["last_offset"] > detail["records"] - 1
    assert manifest["records"] == sum(e["records"] for e in manifest["topics"].values())
    assert max(len(d["files"]) for d in events["partition_detail"]) > 1  # chunked
    assert manifest["format"] == "recallstack.log-backup" and manifest["format_version"] == 1
    assert manifest["source"]["cluster_id"] and manifest["codec"] in ("snappy", "deflate")
    assert events["configs"] == {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
    assert backed_up["progress"][-1] == manifest["records"]
    # Every record kept exactly: key, headers, timestamp, value bytes, offset, against a direct read.
    direct = {(m.partition, m.offset): m for m in await read_all(brokers["source"], EVENTS_TOPIC)}
    stored = [r for f in manifest["files"] if f["topic"] == EVENTS_TOPIC for r in log_backup._records(directory, f)]
    assert len(stored) == len(direct)
    for r in stored:
        m = direct[(r["partition"], r["offset"])]
        assert (r["key"], r["value"], r["timestamp"]) == (m.key, m.value, m.timestamp)
        assert [(h["key"], h["value"]) for h in r["headers"]] == list(m.headers)
    assert source_log["aborted"].event_id.encode() not in b"".join(r["value"] for r in stored)
    sealed = [r for r in stored if any(h["key"] == kafka_codec.SEAL_HEADER for h in r["headers"])]
    assert len(sealed) == len(stored) - 1  # every event but the undecodable record: ciphertext, kept as it was
    assert not [p for p in directory.parent.iterdir() if ".partial-" in p.name]  # renamed into place


async def test_a_tampered_or_missing_file_is_refused_by_name_and_nothing_is_written(brokers, backed_up, tmp_path):
    copy = tmp_path / "tampered"
    shutil.copytree(backed_up["directory"], copy)
    files = [f for f in backed_up["manifest"]["files"] if f["records"]]
    corrupt, missing = files[0]["path"], files[1]["path"]
    data = bytearray((copy / corrupt).read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    (copy / corrupt).write_bytes(bytes(data))
    (copy / missing).unlink()
    before = await end_offsets(brokers["target"])
    with pytest.raises(log_backup.BackupInvalid) as refused:
        await log_backup.restore(brokers["target"], copy)
    assert any(corrupt in p and "SHA-256" in p for p in refused.value.problems), refused.value.problems
    assert any(missing in p and "missing" in p for p in refused.value.problems), refused.value.problems
    assert await end_offsets(brokers["target"]) == before  # not a topic created, not a record produced
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(log_backup.BackupInvalid, match="manifest.json is not valid JSON"):
        log_backup.verify(copy)
    assert log_backup.verify(backed_up["directory"])["records"] == backed_up["manifest"]["records"]


async def test_an_interrupted_backup_leaves_nothing_under_its_name(brokers, source_log, tmp_path):
    calls = []

    def interrupt(progress) -> None:
        calls.append(progress.records)
        if len(calls) == 2:  # files are open, records written
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await log_backup.backup(brokers["source"], tmp_path / "half", on_progress=interrupt, chunk_records=5)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its .partial sibling
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "something").write_text("x")
    with pytest.raises(log_backup.BackupError, match="not an empty folder"):
        await log_backup.backup(brokers["source"], tmp_path / "taken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.fixture(scope="module")
async def restored(brokers, backed_up, pg, cache, graph, keyring):
    """The backup restored into the empty target broker, projected into the second versions."""
    target = brokers["target"]
    assert all(ends is None for ends in (await end_offsets(target)).values())  # never held the log
    summary = await log_backup.restore(target, backed_up["directory"])
    second = {"postgres": 2, "redis": cache.made[1], "neo4j": graph.made[1]}
    await project(pg, second["postgres"], target, keyring)
    await project(cache, second["redis"], target, keyring)
    await project(graph, second["neo4j"], target, keyring)
    return {"summary": summary, "versions": second, "target": target}


async def test_backup_wipe_restore_replay_gives_identical_digests(source_log, backed_up, restored, pg, cache, graph):
    manifest, summary = backed_up["manifest"], restored["summary"]
    assert summary["records"] == manifest["records"]
    assert set(summary["topics_created"]) == {EVENTS_TOPIC, ACCESS_TOPIC, DLQ_TOPIC}
    configs = await log_backup._topic_configs(restored["target"], list(manifest["topics"]))
    assert configs == {topic: entry["configs"] for topic, entry in manifest["topics"].items()}  # as in the source
    for topic, entry in manifest["topics"].items():
        assert {p["partition"]: p["records"] for p in summary["topics"][topic]["partitions"]} == {
            d["partition"]: d["records"] for d in entry["partition_detail"]}  # every record in its own partition
    before = await digests(pg, cache, graph, backed_up["versions"])
    after = await digests(pg, cache, graph, restored["versions"])
    for name in ("postgres", "redis", "neo4j"):
        assert after[name]["parts"] == before[name]["parts"], name
        assert after[name]["digest"] == before[name]["digest"], name
    # Not vacuous: the read models hold the scripted memories, history and graph.
    assert before["postgres"]["parts"]["memories"]["rows"] == source_log["creates"]
    assert before["postgres"]["parts"]["memory_history"]["rows"] > source_log["creates"]
    assert before["redis"]["parts"]["mem"]["rows"] == source_log["creates"]
    assert before["neo4j"]["parts"]["Memory"]["rows"] == source_log["creates"]
    assert before["neo4j"]["parts"]["[:RELATES]"]["rows"] > 0
    accessed = await pg.pool.fetchval("SELECT sum(access_count) FROM rs_pg_v2.memories")
    assert accessed == sum(len(a) for a in [(0, 1, 2), (1, 2), (2,)]) * len(source_log["users"])
    # And the digest sees a difference: one changed memory changes it.
    await pg.pool.execute("UPDATE rs_pg_v2.memories SET importance = 0.123 WHERE id = "
                          "(SELECT id FROM rs_pg_v2.memories ORDER BY id LIMIT 1)")
    changed = await pg_digest.digest(pg.pool, 2)
    assert changed["digest"] != before["postgres"]["digest"]
    assert changed["parts"]["memory_history"] == before["postgres"]["parts"]["memory_history"]
    version = restored["versions"]["neo4j"]
    await graph.driver.execute_query(f"MATCH (m:Memory_v{version}) WITH m LIMIT 1 SET m._LOCK_ = true")
    assert (await neo4j_digest.digest(graph.driver, version))["digest"] == before["neo4j"]["digest"]  # `_` left out
    await graph.driver.execute_query(f"MATCH (m:Memory_v{version}) WITH m LIMIT 1 SET m.text = m.text + '!'")
    assert (await neo4j_digest.digest(graph.driver, version))["parts"]["Memory"] != before["neo4j"]["parts"]["Memory"]
    version = restored["versions"]["redis"]
    key = [k async for k in cache.client.scan_iter(match=f"rs:v{version}:mem:*")][0]
    await cache.client.hset(key, "_o", "999999")  # a position field: left out
    assert (await redis_digest.digest(cache.client, version))["digest"] == before["redis"]["digest"]
    await cache.client.hset(key, "text", "changed")
    assert (await redis_digest.digest(cache.client, version))["parts"]["mem"] != before["redis"]["parts"]["mem"]


async def test_restore_into_a_non_empty_target_is_refused_naming_the_topics(brokers, backed_up, restored):
    target = brokers["target"]
    before = await end_offsets(target)
    with pytest.raises(log_backup.TargetNotEmpty) as refused:
        await log_backup.restore(target, backed_up["directory"])
    message = str(refused.value)
    assert EVENTS_TOPIC in message and "end offsets" in message and ACCESS_TOPIC in message
    assert refused.value.occupied[EVENTS_TOPIC] == before[EVENTS_TOPIC]
    assert await end_offsets(target) == before


def cli(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *argv], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


async def test_the_cli_backs_up_verifies_refuses_and_digests(brokers, backed_up, restored, pg, cache, graph, tmp_path):
    out = tmp_path / "cli-backup"
    done = await asyncio.to_thread(cli, "backup", str(out), "--bootstrap", brokers["source"], "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["records"] == backed_up["manifest"]["records"] and summary["records_per_s"] > 0
    assert "records/s" in done.stderr and "MB/s" in done.stderr  # progress and rate on stderr
    again = await asyncio.to_thread(cli, "backup", str(out), "--bootstrap", brokers["source"])
    assert again.returncode == 1 and "exists and is not an empty folder" in again.stderr
    checked = await asyncio.to_thread(cli, "restore", str(out), "--verify-only", "--json")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["verified"] is True
    refused = await asyncio.to_thread(cli, "restore", str(out), "--bootstrap", brokers["target"], "--json")
    assert refused.returncode == 1
    assert EVENTS_TOPIC in json.loads(refused.stdout)["error"]["message"]
    # The digest command, pointed at this test's read models, says what the modules say.
    env = {"RECALLSTACK_PG_DSN": pg.dsn, "RECALLSTACK_REDIS_URL": cache.url}
    expected = await digests(pg, cache, graph, backed_up["versions"])
    for name, alias in (("postgres", "pg"), ("redis", "cache"), ("neo4j", "graph")):
        shown = await asyncio.to_thread(cli, "digest", "--projection", alias, "--version",
                                        str(backed_up["versions"][name]), "--json", env=env)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["digests"][0]["digest"] == expected[name]["digest"], name
    missing = await asyncio.to_thread(cli, "digest", "--projection", "pg", "--version", "999", env=env)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    # --allow-non-empty appends the backup after what the target holds: the success path of the command.
    appended = await asyncio.to_thread(cli, "restore", str(out), "--bootstrap", brokers["target"], "--allow-non-empty",
                                       "--json")
    assert appended.returncode == 0, appended.stderr
    report = json.loads(appended.stdout)
    assert report["records"] == backed_up["manifest"]["records"] and report["topics_created"] == []
    assert "records/s" in appended.stderr and "intact" in appended.stderr
    ends = await end_offsets(brokers["target"])
    for topic, entry in report["topics"].items():
        for p in entry["partitions"]:
            assert ends[topic][p["partition"]] == p["end_offset"] == p["first_offset"] + p["records"]
