"""Erasure by crypto-shredding against the real servers: the key store (Postgres), each
projector's purge on UserErased (Postgres, Neo4j, Redis), and a replay of a sealed log
after an erasure (Kafka)."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import uuid
from datetime import datetime, timedelta, timezone

import neo4j
import pytest
import redis.asyncio as aioredis
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from adapters import kafka_codec, postgres
from adapters.key_store import KeyMissing, Keyring, KeyStore, KeyStoreUnavailable
from adapters.kafka_log import EventPublisher
from adapters.redis_read_model import prefix_of
from domain import sealing
from domain.events import MemoryAccessed, MemoryCreated, MemoryDeleted, MemoryUpdated, UserErased
from projectors.neo4j_versions import Neo4jVersions
from projectors.pg_versions import PgVersions
from projectors.redis_projector import RedisProjector
from projectors.redis_store import ANSWER_USER_INDEX, IDEM_USER_INDEX
from projectors.applied import Applied
from projectors.runner import SHREDDED, ProjectorRunner

pytestmark = pytest.mark.integration

TOPIC = "recallstack.memory.events"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def created(user_id: str, text: str, minute: int = 0) -> MemoryCreated:
    return MemoryCreated(user_id=user_id, actor=f"user:{user_id}", memory_id=str(uuid.uuid4()), text=text,
                         embedding=tuple([0.1] * 384), embedding_model="minilm",
                         occurred_at=T0 + timedelta(minutes=minute), happened_at=T0,
                         metadata={"note": text}, categories=("test",))


def erased(user_id: str, minute: int = 50) -> UserErased:
    return UserErased(user_id=user_id, actor="operator:test", occurred_at=T0 + timedelta(minutes=minute))


@pytest.fixture
def ks_schema(settings):
    """A key store schema of the test's own: the real one's keys are wrapped with the real master key."""
    import asyncpg

    name = f"keystore_test_{uuid.uuid4().hex[:8]}"
    yield name

    async def drop():
        conn = await asyncpg.connect(settings.pg_dsn)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        finally:
            await conn.close()
    asyncio.run(drop())


@pytest.fixture
def new_store(settings, ks_schema):
    return lambda master=None: KeyStore(settings.pg_dsn, master or sealing.new_key_material(), schema=ks_schema)


@pytest.fixture
def store(new_store):
    return new_store()


@pytest.fixture
async def closing(store):
    yield store
    await store.close()


# --- the key store --------------------------------------------------------------------


async def test_key_for_creates_once_caches_and_destroy_leaves_a_tombstone(closing, new_store, user_id):
    store = closing
    first = await store.key_for(user_id)
    assert first.version == 1 and len(first.material) == 32
    assert await store.key_for(user_id) is first  # cached
    # Another process (its own store, same master key) gets the same key.
    other = new_store(store._master)
    try:
        assert await other.key_for(user_id) == first
        assert await store.destroy(user_id) == [1]
        assert await store.destroy(user_id) == []  # idempotent
        assert await store.lookup(user_id, 1) is None  # destroyed, not missing
        other.forget(user_id)
        assert await other.lookup(user_id, 1) is None
        # A worker (revive=False) gets no key for an erased user; a user never seen gets one.
        assert await store.key_for(user_id, revive=False) is None
        assert (await store.key_for(f"{user_id}-new", revive=False)).version == 1
        second = await store.key_for(user_id)  # a write after the erasure: a NEW version
        assert second.version == 2 and second.material != first.material
        rows = await store.versions(user_id)
        assert [(r["version"], r["destroyed_at"] is not None) for r in rows] == [(1, True), (2, False)]
        with pytest.raises(KeyMissing):
            await store.lookup(user_id, 7)
        # The database holds no key in the clear: only the wrapped one.
        raw = await (await store._pool()).fetchval(
            f"SELECT wrapped_key FROM {store.schema}.user_data_keys WHERE user_id = $1 AND version = 2", user_id)
        assert second.material not in bytes(raw)
    finally:
        await other.close()


async def test_postgres_down_seals_with_the_cached_key_but_makes_no_new_one(closing, user_id):
    """Degradation mode "Postgres down": a user this process sealed for keeps writing (its
    key, past the 5 s refresh), a user it never sealed for cannot (nothing to seal with)."""
    store = closing
    store.current_ttl_s = 0  # every call asks the store again
    key = await store.key_for(user_id)
    await store.close()
    store.dsn = "postgresql://nobody@127.0.0.1:9/none"  # a port nothing listens on: Postgres is down
    store._schema_ready = False
    assert await store.key_for(user_id) == key
    with pytest.raises(KeyStoreUnavailable):
        await store.key_for(f"{user_id}-never-seen")


async def test_racing_creators_agree_on_one_key(new_store, user_id):
    master = sealing.new_key_material()
    stores = [new_store(master) for _ in range(4)]
    try:
        keys = await asyncio.gather(*(s.key_for(user_id) for s in stores))
        assert len({(k.version, k.material) for k in keys}) == 1
    finally:
        for s in stores:
            await s.close()


async def test_backup_and_restore_never_bring_an_erased_key_back(closing, new_store, tmp_path, user_id):
    store = closing
    kept, gone = f"{user_id}-kept", f"{user_id}-gone"
    k_kept, k_gone = await store.key_for(kept), await store.key_for(gone)
    backup = tmp_path / "keys.jsonl"
    assert await store.backup(backup) >= 2
    assert backup.stat().st_mode & 0o777 == 0o600
    assert base64.b64encode(k_kept.material).decode() not in backup.read_text()
    await store.destroy(gone)  # erased after the backup was taken
    pool = await store._pool()
    await pool.execute(f"DELETE FROM {store.schema}.user_data_keys WHERE user_id = $1", kept)  # lost meanwhile
    read, _ = await store.restore(backup)
    assert read >= 2
    assert await store.lookup(kept, 1) == k_kept  # restored
    assert await store.lookup(gone, 1) is None  # the tombstone won
    # After a full loss, the log's UserErased destroys what the old backup brought back.
    await pool.execute(f"DELETE FROM {store.schema}.user_data_keys WHERE user_id = $1", gone)
    await store.restore(backup)
    assert await store.lookup(gone, 1) == k_gone
    assert await store.destroy_erased_before({gone: datetime.now(timezone.utc)}) == {gone: [1]}
    assert await store.lookup(gone, 1) is None
    # Another master key's backup is refused before anything is written.
    stranger = new_store()
    try:
        with pytest.raises(ValueError, match="master key"):
            await stranger.restore(backup)
    finally:
        await stranger.close()


# --- Postgres ---------------------------------------------------------------------------


@pytest.fixture
async def pg_version(settings):
    await postgres.migrate(settings.pg_dsn, 384)
    pool = await postgres.create_pool(settings.pg_dsn)
    versions = PgVersions(pool, settings.pg_dsn, 384)
    number = random.randrange(10**5, 10**6)
    await versions.create_version(number)
    yield pool, versions.projection(number), postgres.schema_of(number)
    await versions.drop(number)
    await pool.close()


async def _user_rows(pool, schema: str, user_id: str) -> dict[str, int]:
    tables = await pool.fetch(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = $1"
        " AND column_name IN ('user_id', 'grantee_user_id')", schema)
    return {t["table_name"]: await pool.fetchval(
        f'SELECT count(*) FROM {schema}."{t["table_name"]}" WHERE "{t["column_name"]}" = $1', user_id)
        for t in tables}


async def test_postgres_purges_every_row_of_the_user_once_and_for_all(pg_version, user_id):
    pool, projector, schema = pg_version
    other = f"{user_id}-other"
    mine, theirs = created(user_id, "erase me"), created(other, "keep me")
    gone = created(user_id, "deleted before", 1)
    batch = [Applied(0, 1, mine), Applied(0, 2, theirs), Applied(0, 3, gone),
             Applied(0, 4, MemoryUpdated(user_id=user_id, actor="u", memory_id=mine.memory_id, text="erase me too")),
             Applied(0, 5, MemoryDeleted(user_id=user_id, actor="u", memory_id=gone.memory_id)),
             Applied(0, 6, MemoryAccessed(user_id=user_id, actor="u", memory_ids=(mine.memory_id,), source="get"))]
    await projector.apply_batch(TOPIC, batch)
    assert sum((await _user_rows(pool, schema, user_id)).values()) >= 5  # memories and history
    # Shares the identity model keeps, when it has the table: rows naming the user either way.
    if await pool.fetchval("SELECT to_regclass($1)", f"{schema}.memory_shares"):
        await pool.execute(f"INSERT INTO {schema}.memory_shares VALUES ($1, $2, $3, 'read', now()),"
                           " ($4, $3, $2, 'read', now())", uuid.UUID(theirs.memory_id), other, user_id,
                           uuid.UUID(mine.memory_id))
    await projector.apply_batch(TOPIC, [Applied(0, 7, erased(user_id))])
    assert set((await _user_rows(pool, schema, user_id)).values()) == {0}
    assert (await _user_rows(pool, schema, other))["memories"] == 1
    # Redelivered (and a second erasure): nothing changes, nothing fails.
    await projector.apply_batch(TOPIC, [Applied(0, 7, erased(user_id)), Applied(0, 8, erased(user_id, 51))])
    assert set((await _user_rows(pool, schema, user_id)).values()) == {0}
    assert await pool.fetchval(f"SELECT text FROM {schema}.memories WHERE user_id = $1", other) == "keep me"


async def test_a_create_after_the_erasure_in_the_same_batch_survives(pg_version, user_id):
    pool, projector, schema = pg_version
    before, after = created(user_id, "old life"), created(user_id, "new life", 60)
    await projector.apply_batch(TOPIC, [Applied(1, 1, before), Applied(1, 2, erased(user_id)), Applied(1, 3, after)])
    texts = [r["text"] for r in await pool.fetch(f"SELECT text FROM {schema}.memories WHERE user_id = $1", user_id)]
    assert texts == ["new life"]


# --- Neo4j ------------------------------------------------------------------------------


@pytest.fixture
async def graph(settings):
    version = random.randrange(10**6, 10**7)
    projection = f"neo4j_erasure_{uuid.uuid4().hex[:8]}"
    async with neo4j.AsyncGraphDatabase.driver(settings.neo4j_uri,
                                               auth=(settings.neo4j_user, settings.neo4j_password)) as driver:
        versions = Neo4jVersions(driver, projection=projection)
        await versions.create_version(version)
        projector = Neo4jVersions(driver, projection=projection).projection(version)
        await projector.ensure_schema()
        yield driver, projector, version
        await versions.drop(version)
        # drop() reads (so creates) the projection's pointer: no pointer of a test may outlive it
        # (a real replay refuses to drop a version some projection's pointer names).
        await driver.execute_query("MATCH (n) WHERE (n:ReadModelLive OR n:ReadModelVersion) AND n.projection = $p"
                                   " DELETE n", p=projection)


async def _graph_of(driver, version: int, user_id: str) -> list[dict]:
    records, _, _ = await driver.execute_query(
        f"MATCH (n) WHERE any(l IN labels(n) WHERE l ENDS WITH '_v{version}') AND n.user_id = $u"
        " RETURN labels(n) AS labels, properties(n) AS props", u=user_id)
    return [dict(r) for r in records]


async def test_neo4j_purges_the_users_nodes_and_relations(graph, user_id):
    driver, projector, version = graph
    other = f"{user_id}-other"
    await projector.apply_batch(TOPIC, [
        Applied(0, 1, created(user_id, "Alice works at Acme in Berlin")),
        Applied(0, 2, created(other, "Bob works at Initech in Paris")),
    ])
    assert len(await _graph_of(driver, version, user_id)) >= 3  # user, memory, entities, applied
    # In one batch: an event of the user, then the erasure (its applied marker must not survive).
    await projector.apply_batch(TOPIC, [Applied(0, 3, created(user_id, "Alice lives in Rome", 2)),
                                        Applied(0, 4, erased(user_id))])
    left = await _graph_of(driver, version, user_id)
    assert [n["props"].get("event_type") for n in left] == ["UserErased"]  # only the erasure's own marker
    assert "Bob works at Initech in Paris" in json.dumps([n["props"] for n in await _graph_of(driver, version, other)],
                                                         default=str)
    await projector.apply_batch(TOPIC, [Applied(0, 4, erased(user_id))])  # redelivered: idempotent
    assert len(await _graph_of(driver, version, user_id)) == 1


# --- Redis ------------------------------------------------------------------------------


@pytest.fixture
async def redis_version(settings):
    client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5)
    version = random.randrange(10**6, 10**9)
    yield client, RedisProjector(client, version), prefix_of(version)
    keys = [k async for k in client.scan_iter(match=f"{prefix_of(version)}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_redis_purges_documents_tombstones_caches_and_stored_answers(redis_version, user_id):
    client, projector, prefix = redis_version
    other = f"{user_id}-other"
    mine, tomb, theirs = created(user_id, "erase me"), created(user_id, "tombstone"), created(other, "keep me")
    await projector.apply_batch(TOPIC, [Applied(0, 1, mine), Applied(0, 2, tomb), Applied(0, 3, theirs),
                                        Applied(0, 4, MemoryDeleted(user_id=user_id, actor="u",
                                                                    memory_id=tomb.memory_id))])
    assert await client.hget(f"{prefix}:mem:{tomb.memory_id}", "text") == b"tombstone"  # kept as a tombstone
    answer, their_answer = f"rs:qc:{prefix}:{user_id}:3:abc", f"rs:qc:{prefix}:{other}:3:abc"
    idem = f"recallstack:idem:test-{uuid.uuid4().hex}"
    await client.set(answer, json.dumps({"results": [{"memory": "erase me"}]}), ex=60)
    await client.set(their_answer, json.dumps({"results": [{"memory": "keep me"}]}), ex=60)
    await client.sadd(ANSWER_USER_INDEX + user_id, answer)  # as query_api/caches.AnswerCache.store lists it
    await client.sadd(ANSWER_USER_INDEX + other, their_answer)
    await client.set(idem, json.dumps({"answer": {"memory": "erase me"}}), ex=60)
    await client.sadd(IDEM_USER_INDEX + user_id, idem)
    try:
        await projector.apply_batch(TOPIC, [Applied(0, 5, erased(user_id))])
        for key in (f"{prefix}:mem:{mine.memory_id}", f"{prefix}:mem:{tomb.memory_id}", answer, idem,
                    IDEM_USER_INDEX + user_id, ANSWER_USER_INDEX + user_id, f"{prefix}:user:{user_id}:ids",
                    f"{prefix}:user:{user_id}:recent", f"{prefix}:user:{user_id}:all"):
            assert not await client.exists(key), key
        assert await client.hget(f"{prefix}:mem:{theirs.memory_id}", "text") == b"keep me"
        assert await client.exists(their_answer)
        assert await projector.apply_items(TOPIC, [{"p": "0", "o": "5", "t": "e", "user_id": user_id,
                                                    "eid": str(uuid.uuid4()), "at": "x"}]) == (0, 1)  # redelivery
    finally:
        await client.delete(their_answer, answer, idem, ANSWER_USER_INDEX + other)


# --- a sealed log, erased, replayed -------------------------------------------------------


async def test_a_sealed_log_replays_after_an_erasure_without_that_user(settings, pg_version, new_store, user_id):
    pool, _, _ = pg_version
    keyring = Keyring(new_store())
    run = uuid.uuid4().hex[:8]
    topic, dlq = f"test-sealed-{run}", f"test-sealed-dlq-{run}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 2, 1), NewTopic(dlq, 1, 1)])
    publisher = EventPublisher(settings.kafka_bootstrap, topic=topic, timeout_s=10, keys=keyring,
                               transactional_id=f"test-sealed-{run}")
    other = f"{user_id}-other"
    versions = PgVersions(pool, settings.pg_dsn, 384)
    made = []

    async def project() -> str:
        number = random.randrange(10**5, 10**6)
        await versions.create_version(number)
        made.append(number)
        runner = ProjectorRunner(versions.projection(number), settings.kafka_bootstrap, topic=topic, dlq_topic=dlq,
                                 replay=True, keys=Keyring(new_store(keyring.store._master)))
        await runner.start()
        try:
            while await runner.poll_once(timeout_ms=500):
                pass
        finally:
            await runner.close()
            await runner.keys.store.close()
        return postgres.schema_of(number)

    try:
        await publisher.publish([created(user_id, "secret of the erased"), created(other, "secret of the other")])
        before = await project()
        assert await pool.fetchval(f"SELECT count(*) FROM {before}.memories") == 2
        await keyring.destroy(user_id)
        await publisher.publish([erased(user_id)])
        shredded = SHREDDED.labels("postgres")._value.get()
        after = await project()  # a replay from offset 0 of the sealed log
        assert [r["text"] for r in await pool.fetch(f"SELECT text FROM {after}.memories")] == ["secret of the other"]
        assert SHREDDED.labels("postgres")._value.get() == shredded + 1
        ends = await _end_offsets(settings, dlq)
        assert ends == 0, "nothing may be dead-lettered by an erasure"
    finally:
        await publisher.stop()
        await keyring.store.close()
        for number in made:
            await versions.drop(number)
        await admin.delete_topics([topic, dlq])
        await admin.close()


async def _end_offsets(settings, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets([TopicPartition(topic, 0)])).values())
    finally:
        await consumer.stop()


def test_the_codec_refuses_to_open_a_sealed_value_under_a_destroyed_key():
    key = sealing.DataKey("u", 1, sealing.new_key_material())
    value, headers = kafka_codec.encode(created("u", "x"), key)
    with pytest.raises(kafka_codec.Shredded):
        kafka_codec.decode(value, headers, lambda user, version: None)


class _Refusing:
    """A projection that refuses every memory, quoting its text in the error (as a real one might)."""
    name = "refusing"
    transient_errors = ()

    async def positions(self, topic):
        return {}

    async def apply_batch(self, topic, batch):
        for item in batch:
            if isinstance(item.event, MemoryCreated):
                raise ValueError(f"cannot store {item.event.text!r}")


async def test_a_dead_letter_of_a_sealed_event_keeps_its_error_sealed_too(settings, new_store, user_id):
    from aiokafka import AIOKafkaConsumer

    from projectors import dead_letters

    keyring = Keyring(new_store())
    run = uuid.uuid4().hex[:8]
    topic, dlq = f"test-sealed-{run}", f"test-sealed-dlq-{run}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1), NewTopic(dlq, 1, 1)])
    publisher = EventPublisher(settings.kafka_bootstrap, topic=topic, timeout_s=10, keys=keyring,
                               transactional_id=f"test-sealed-{run}")
    marker = f"zq{uuid.uuid4().hex}"
    runner = ProjectorRunner(_Refusing(), settings.kafka_bootstrap, topic=topic, dlq_topic=dlq, replay=True,
                             keys=keyring)
    try:
        await publisher.publish([created(user_id, f"the secret {marker}")])
        await runner.start()
        while await runner.poll_once(timeout_ms=1000):
            pass
        consumer = AIOKafkaConsumer(dlq, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        try:
            dead = await asyncio.wait_for(consumer.getone(), 10)
        finally:
            await consumer.stop()
        raw = json.dumps([(k, v.decode(errors="replace")) for k, v in dead.headers]) + dead.value.decode(errors="replace")
        assert marker not in raw and "sealed_error" in raw
        letters = await dead_letters.read_all(settings.kafka_bootstrap, dlq, keys=keyring)
        assert marker in letters[0]["error"] and "ValueError" in letters[0]["error"]  # opened with the key
        await keyring.destroy(user_id)
        fresh = Keyring(new_store(keyring.store._master))  # another process: nothing cached
        try:
            letters = await dead_letters.read_all(settings.kafka_bootstrap, dlq, keys=fresh)
        finally:
            await fresh.store.close()
        assert letters[0]["error"] == "(sealed; its user was erased)"
    finally:
        await runner.close()
        await publisher.stop()
        await keyring.store.close()
        await admin.delete_topics([topic, dlq])
        await admin.close()
