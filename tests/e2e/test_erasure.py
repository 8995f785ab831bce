"""Erasure by crypto-shredding, end to end (docs/security.md): a user's memories go in
through the API (plain adds, an update, a search, an idempotent add, a conversation for
the extraction worker), `recallstack users erase` erases the user, and afterwards the
user's marker is nowhere: not in the raw bytes of Kafka's log segments (every topic:
events, access, DLQ, changelogs, offsets), not in any Postgres table, not in Neo4j, not in
Redis. Another user's memories are untouched, and a replay of the whole log still succeeds
without the erased user."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

import asyncpg
import neo4j
import pytest
import redis.asyncio as aioredis

from tests.e2e.test_cli_json import recallstack

pytestmark = pytest.mark.e2e


def accepted(answer) -> dict:
    assert answer.status_code == 202, answer.text
    return answer.json()


def kafka_files_with(settings, needles: list[bytes]) -> dict[bytes, list[str]]:
    """Which files under Kafka's data folder hold each needle, raw bytes (segments, indexes, all topics)."""
    found: dict[bytes, list[str]] = {n: [] for n in needles}
    for folder, _dirs, files in os.walk(settings.home / "kafka" / "data"):
        for name in files:
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue  # a segment rolled or deleted meanwhile
            for needle in needles:
                if needle in data:
                    found[needle].append(path)
    return found


async def postgres_rows_with(settings, needle: str) -> list[str]:
    """Every table of every schema (read models of every version, the key store, public) with a
    row whose text holds needle (vector columns left out: they hold no text, and are slow to print)."""
    conn = await asyncpg.connect(settings.pg_dsn, command_timeout=None)
    try:
        columns = await conn.fetch(
            "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c"
            " JOIN information_schema.tables t USING (table_schema, table_name) WHERE t.table_type = 'BASE TABLE'"
            " AND c.table_schema NOT IN ('pg_catalog', 'information_schema') AND c.udt_name <> 'vector'")
        tables: dict[str, list[str]] = {}
        for c in columns:
            tables.setdefault(f'"{c["table_schema"]}"."{c["table_name"]}"', []).append(f'"{c["column_name"]}"::text')
        hits = []
        for name, texts in tables.items():
            try:
                if await conn.fetchval(f"SELECT count(*) FROM {name} WHERE concat_ws(' ', {', '.join(texts)})"
                                       " LIKE '%' || $1 || '%'", needle):
                    hits.append(name)
            except asyncpg.UndefinedTableError:
                pass  # a version another session's replay dropped meanwhile
        return hits
    finally:
        await conn.close()


async def neo4j_with(settings, needle: str, user_id: str) -> tuple[int, list[dict]]:
    """(nodes and relationships with a property holding needle, the user's nodes)."""
    async with neo4j.AsyncGraphDatabase.driver(settings.neo4j_uri,
                                               auth=(settings.neo4j_user, settings.neo4j_password)) as driver:
        # A list property (a memory's `times`) is searched element by element: toString() takes no list.
        holds = ("any(k IN keys({x}) WHERE CASE WHEN valueType({x}[k]) STARTS WITH 'LIST' "
                 "THEN any(v IN {x}[k] WHERE toString(v) CONTAINS $s) ELSE toString({x}[k]) CONTAINS $s END)")
        nodes, _, _ = await driver.execute_query(
            f"MATCH (n) WHERE {holds.format(x='n')} RETURN count(n) AS n", s=needle)
        rels, _, _ = await driver.execute_query(
            f"MATCH ()-[r]->() WHERE {holds.format(x='r')} RETURN count(r) AS n", s=needle)
        mine, _, _ = await driver.execute_query(
            "MATCH (n {user_id: $u}) RETURN labels(n) AS labels, n.event_type AS event_type", u=user_id)
        return nodes[0]["n"] + rels[0]["n"], [dict(r) for r in mine]


async def redis_keys_with(settings, needle: bytes) -> list[str]:
    """Every key whose name or value (any type) holds needle."""
    client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=10)
    hits = []
    try:
        async for key in client.scan_iter(count=1000):
            kind = (await client.type(key)).decode()
            if kind == "string":
                values = [await client.get(key) or b""]
            elif kind == "hash":
                values = [k + v for k, v in (await client.hgetall(key)).items()]
            elif kind == "zset":
                values = [m for m, _ in await client.zrange(key, 0, -1, withscores=True)]
            elif kind == "set":
                values = list(await client.smembers(key))
            elif kind == "list":
                values = await client.lrange(key, 0, -1)
            elif kind == "stream":
                values = [json.dumps(e, default=str).encode() for e in await client.xrange(key)]
            else:
                values = []
            if needle in key or any(needle in v for v in values):
                hits.append(key.decode(errors="replace"))
    finally:
        await client.aclose()
    return hits


def sparse_files_with(settings, needles: list[bytes]) -> dict[bytes, list[str]]:
    """Which files of the sparse index (every version) hold each needle, raw bytes."""
    found: dict[bytes, list[str]] = {n: [] for n in needles}
    for folder, _dirs, files in os.walk(settings.sparse_dir):
        for name in files:
            try:
                with open(os.path.join(folder, name), "rb") as f:
                    data = f.read()
            except OSError:
                continue  # a segment merged away meanwhile
            for needle in needles:
                if needle in data:
                    found[needle].append(os.path.join(folder, name))
    return found


def test_an_erased_user_leaves_no_plaintext_anywhere_and_the_log_still_replays(gateway, settings, user_id):
    marker = f"zq{uuid.uuid4().hex}"  # the erased user's content
    kept = f"kq{uuid.uuid4().hex}"  # another user's content, which stays (sealed in the log)
    # Not derived from user_id: the kept user's id would hold the erased one's bytes, and the
    # sparse store (compressed or not, depending on the block) would then "leak" them.
    other = f"keep-{uuid.uuid4().hex[:12]}"

    # The erased user's content, every way it travels.
    first = accepted(gateway.post("/v1/memories", json={
        "text": f"My locker code is {marker} at the Berlin office", "user_id": user_id,
        "metadata": {"hint": marker}, "categories": ["secrets"], "infer": False},
        headers={"Idempotency-Key": f"erasure-{marker}"}))  # its stored answer quotes the text
    memory_id = first["results"][0]["id"]
    accepted(gateway.post("/v1/memories", json={"text": f"Alice {marker} works at Acme", "user_id": user_id,
                                                "infer": False}))
    token = accepted(gateway.patch(f"/v1/memories/{memory_id}", params={"user_id": user_id},
                                   json={"text": f"My locker code is {marker} in Paris now"},
                                   headers={"X-Consistency-Token": first["consistency_token"]}))["consistency_token"]
    accepted(gateway.post("/v1/memories", json={
        "messages": [{"role": "user", "content": f"I moved to Lisbon, my badge number is {marker}."}],
        "user_id": user_id, "infer": True}))  # a conversation for the extraction worker
    kept_token = accepted(gateway.post("/v1/memories", json={"text": f"Bob keeps {kept} in his notes",
                                                             "user_id": other, "infer": False}))["consistency_token"]
    found = gateway.post("/v1/memories/search", json={"query": f"locker code {marker}", "user_id": user_id,
                                                      "consistency_token": token})
    assert found.status_code == 200 and found.json()["results"], found.text  # an access event, a cached answer
    assert gateway.post("/v1/memories/search", json={"query": f"locker code {marker}", "user_id": user_id,
                                                     "consistency_token": token}).status_code == 200
    assert gateway.get("/v1/memories", params={"user_id": other, "consistency_token": kept_token}).status_code == 200
    time.sleep(2)  # the access log flushes in the background; the worker extracts

    # While the user exists, their content is sealed in the log already: no plaintext in any segment.
    before = kafka_files_with(settings, [marker.encode(), kept.encode()])
    assert before == {marker.encode(): [], kept.encode(): []}, before
    # The sparse index holds the user's bytes in plain until the erasure, so the check below can fail:
    # the marker or the user id (which of them a compressed block or the dictionary's FST leaves
    # readable varies with the content; test_sparse_projector's control does the same).
    deadline = time.monotonic() + 30
    while not any(sparse_files_with(settings, [marker.encode(), user_id.encode()]).values()):
        assert time.monotonic() < deadline, "the sparse projector never indexed the memory"
        time.sleep(0.5)

    code, doc, err = recallstack(settings, "users", "erase", user_id, "--yes", "--reason", "e2e test", "--json",
                                 "--wait", "90")
    assert code == 0, err
    assert sorted(doc["purged_by"]) == ["neo4j", "postgres", "redis", "sparse"] and doc["still_purging"] == []
    time.sleep(1)  # a search answer stored just before the purge could land after it; none was running

    assert kafka_files_with(settings, [marker.encode()]) == {marker.encode(): []}
    assert asyncio.run(postgres_rows_with(settings, marker)) == []
    texts, nodes = asyncio.run(neo4j_with(settings, marker, user_id))
    assert texts == 0
    assert {n["event_type"] for n in nodes} <= {"UserErased"}, nodes  # only the erasure's own marker
    assert asyncio.run(redis_keys_with(settings, marker.encode())) == []
    assert sparse_files_with(settings, [marker.encode(), user_id.encode()]) == {marker.encode(): [],
                                                                                 user_id.encode(): []}
    # Through the API: the user has nothing; the other user keeps everything.
    assert gateway.get("/v1/memories", params={"user_id": user_id}).json()["results"] == []
    assert gateway.get(f"/v1/memories/{memory_id}", params={"user_id": user_id}).status_code == 404
    theirs = gateway.get("/v1/memories", params={"user_id": other}).json()["results"]
    assert [m["memory"] for m in theirs] == [f"Bob keeps {kept} in his notes"]
    assert asyncio.run(postgres_rows_with(settings, kept)) != []

    # The log replays: the erased user's events are skipped (not dead-lettered), the rest rebuilds.
    letters_before = _letters(settings)
    deadline = time.monotonic() + 900
    while True:
        done = subprocess.run([sys.executable, "-m", "cli.main", "replay", "--projection", "postgres", "--json"],
                              env={**os.environ, "RECALLSTACK_HOME": str(settings.home)}, capture_output=True,
                              text=True, check=False, timeout=1200)
        if "already running" not in done.stderr or time.monotonic() > deadline:
            break
        time.sleep(10)  # another session's replay of the same stack: ours follows it
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["events"] > 0
    assert asyncio.run(postgres_rows_with(settings, marker)) == []
    theirs = gateway.get("/v1/memories", params={"user_id": other}).json()["results"]
    assert [m["memory"] for m in theirs] == [f"Bob keeps {kept} in his notes"]
    assert _letters(settings) == letters_before, "the replay dead-lettered something"

    # A later write for the same id starts a new life with a new key.
    token = accepted(gateway.post("/v1/memories", json={"text": "a fresh start", "user_id": user_id,
                                                        "infer": False}))["consistency_token"]
    again = gateway.get("/v1/memories", params={"user_id": user_id, "consistency_token": token}).json()["results"]
    assert [m["memory"] for m in again] == ["a fresh start"]


def _letters(settings) -> int:
    code, doc, err = recallstack(settings, "dlq", "list", "--projection", "postgres", "--json")
    assert code == 0, err
    return doc["count"]


def test_restoring_an_old_key_store_backup_never_brings_an_erased_user_back(gateway, settings, user_id, tmp_path):
    token = accepted(gateway.post("/v1/memories", json={"text": "a memory to seal", "user_id": user_id,
                                                        "infer": False}))["consistency_token"]
    assert gateway.get("/v1/memories", params={"user_id": user_id, "consistency_token": token}).status_code == 200
    backup = tmp_path / "keys.jsonl"
    code, doc, err = recallstack(settings, "keystore", "backup", str(backup), "--json")
    assert code == 0 and doc["rows"] >= 1, err
    assert user_id in backup.read_text()
    code, doc, err = recallstack(settings, "users", "erase", user_id, "--yes", "--wait", "0", "--json")
    assert code == 0, err

    async def rows(delete: bool = False):
        conn = await asyncpg.connect(settings.pg_dsn)
        try:
            if delete:  # the store lost this user's rows (a disaster), only the old backup has them
                await conn.execute("DELETE FROM keystore.user_data_keys WHERE user_id = $1", user_id)
            return [(r["version"], r["wrapped_key"] is None) for r in await conn.fetch(
                "SELECT version, wrapped_key FROM keystore.user_data_keys WHERE user_id = $1", user_id)]
        finally:
            await conn.close()

    assert asyncio.run(rows()) == [(1, True)]
    assert asyncio.run(rows(delete=True)) == []
    code, doc, err = recallstack(settings, "keystore", "restore", str(backup), "--json")
    assert code == 0, err
    assert doc["destroyed_again"][user_id] == [1]  # the log's UserErased destroyed it again
    assert asyncio.run(rows()) == [(1, True)]
