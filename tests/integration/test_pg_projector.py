"""PgProjector against the real Postgres: idempotent applies, offsets in the same transaction."""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timezone

import numpy as np
import pytest

from adapters import postgres
from domain.events import MemoryCreated
from projectors.pg_projector import PgProjector
from projectors.applied import Applied, Relocated

pytestmark = pytest.mark.integration

TOPIC = f"test-topic-{uuid.uuid4().hex[:6]}"  # keeps these offsets apart from the real projection's


def event(user_id: str, text: str) -> MemoryCreated:
    vec = np.random.default_rng(1).normal(size=384).astype(np.float32)
    return MemoryCreated(user_id=user_id, actor=f"user:{user_id}", memory_id=str(uuid.uuid4()), text=text,
                         embedding=tuple(float(x) for x in vec / np.linalg.norm(vec)), embedding_model="m",
                         happened_at=datetime(2024, 1, 2, tzinfo=timezone.utc), metadata={"k": 1})


async def test_redelivered_batch_changes_nothing_and_offsets_move_with_the_data(pool, user_id):
    projector = PgProjector(pool)
    e1, e2 = event(user_id, "first"), event(user_id, "second")
    batch = [Applied(3, 10, e1), Applied(3, 11, e2), Applied(5, 7, None)]
    await projector.apply_batch(TOPIC, batch)
    await projector.apply_batch(TOPIC, batch)  # a redelivery after a crash before the Kafka commit
    rows = await pool.fetch("SELECT id, text, metadata, occurred_at FROM memories WHERE user_id = $1 ORDER BY text",
                            user_id)
    assert [r["text"] for r in rows] == ["first", "second"]
    assert rows[0]["occurred_at"] == datetime(2024, 1, 2, tzinfo=timezone.utc)
    assert await projector.positions(TOPIC) == {3: 11, 5: 7}


async def test_failed_batch_rolls_back_data_and_offsets_together(pool, user_id):
    projector = PgProjector(pool)
    good = event(user_id, "kept out")
    bad = MemoryCreated(**{**good.__dict__, "memory_id": "not-a-uuid", "event_id": str(uuid.uuid4())})
    with pytest.raises(Exception):
        await projector.apply_batch(TOPIC + "-rollback", [Applied(0, 1, good), Applied(0, 2, bad)])
    assert await pool.fetchval("SELECT count(*) FROM memories WHERE user_id = $1", user_id) == 0
    assert await projector.positions(TOPIC + "-rollback") == {}


async def test_migrations_are_recorded_and_idempotent(settings, pool):
    assert await postgres.migrate(settings.pg_dsn, 384) == []
    async with pool.acquire() as conn:
        schema = postgres.schema_of(await postgres.live_version(conn))
    versions = [r["version"] for r in await pool.fetch(f"SELECT version FROM {schema}.schema_migrations ORDER BY 1")]
    assert versions == [number for number, _, _ in postgres.migrations()]
    with pytest.raises(postgres.DimensionMismatch, match="384"):
        await postgres.migrate(settings.pg_dsn, 1536)


async def test_memories_pages_leave_room_for_hot_access_updates(pool):
    """Each search's access counts must not add a row version to every index (HNSW included)."""
    async with pool.acquire() as conn:
        schema = postgres.schema_of(await postgres.live_version(conn))
    options = await pool.fetchval("SELECT reloptions FROM pg_class WHERE oid = $1::regclass", f"{schema}.memories")
    assert "fillfactor=80" in options


async def test_update_and_deletes_change_the_row_and_write_history_once(pool, user_id):
    from domain.events import MemoryDeleted, MemoryScopeDeleted, MemoryUpdated

    projector = PgProjector(pool)
    topic = TOPIC + "-history"
    kept, gone = event(user_id, "uses vim"), event(user_id, "likes jazz")
    gone = MemoryCreated(**{**gone.__dict__, "agent_id": "music"})
    update = MemoryUpdated(user_id=user_id, actor="user:x", memory_id=kept.memory_id, text="uses neovim",
                           metadata={"since": 2024})
    scope = MemoryScopeDeleted(user_id=user_id, actor="user:x", agent_id="music")
    batch = [Applied(1, 1, kept), Applied(1, 2, gone), Applied(1, 3, update), Applied(1, 4, scope)]
    await projector.apply_batch(topic, batch)
    await projector.apply_batch(topic, batch)  # redelivered: nothing changes, no duplicate history
    rows = {r["text"]: r for r in await pool.fetch(
        "SELECT text, metadata, state, version FROM memories WHERE user_id = $1", user_id)}
    assert rows["uses neovim"]["state"] == "active" and rows["uses neovim"]["version"] == 2
    assert json.loads(rows["uses neovim"]["metadata"]) == {"since": 2024}
    assert rows["likes jazz"]["state"] == "deleted"
    history = await pool.fetch("SELECT memory_id, event_type, old_text, new_text, log_offset FROM memory_history"
                               " WHERE user_id = $1 ORDER BY log_offset", user_id)
    assert [(r["event_type"], r["old_text"], r["new_text"]) for r in history] == [
        ("MemoryCreated", None, "uses vim"), ("MemoryCreated", None, "likes jazz"),
        ("MemoryUpdated", "uses vim", "uses neovim"), ("MemoryScopeDeleted", "likes jazz", None)]
    delete = MemoryDeleted(user_id=user_id, actor="user:x", memory_id=kept.memory_id)
    await projector.apply_batch(topic, [Applied(1, 5, delete)])
    assert await pool.fetchval("SELECT state FROM memories WHERE id = $1", uuid.UUID(kept.memory_id)) == "deleted"


async def test_an_update_for_another_users_memory_changes_nothing(pool, user_id):
    from domain.events import MemoryUpdated

    projector = PgProjector(pool)
    mine = event(user_id, "mine")
    intruder = MemoryUpdated(user_id="mallory", actor="user:mallory", memory_id=mine.memory_id, text="pwned")
    await projector.apply_batch(TOPIC + "-owner", [Applied(0, 1, mine), Applied(0, 2, intruder)])
    assert await pool.fetchval("SELECT text FROM memories WHERE id = $1", uuid.UUID(mine.memory_id)) == "mine"


# --- versions (replay builds one beside the live one) -----------------------------------


@pytest.fixture
async def spare_version(settings, pool):
    """A version of its own, far from the live one; dropped afterwards."""
    from projectors.pg_versions import PgVersions

    versions = PgVersions(pool, settings.pg_dsn, 384)
    number = random.randrange(10**5, 10**6)
    await versions.create_version(number)
    yield versions, number
    await versions.drop(number)


async def test_a_pinned_version_is_written_beside_the_live_one_and_readers_do_not_see_it(spare_version, pool,
                                                                                        user_id):
    versions, number = spare_version
    await versions.projection(number).apply_batch(TOPIC + "-pinned", [Applied(0, 3, event(user_id, "beside"))])
    schema = postgres.schema_of(number)
    assert await pool.fetchval(f"SELECT count(*) FROM {schema}.memories WHERE user_id = $1", user_id) == 1
    assert await pool.fetchval("SELECT count(*) FROM memories WHERE user_id = $1", user_id) == 0
    assert await versions.projection(number).positions(TOPIC + "-pinned") == {0: 3}
    assert number in await versions.versions()


async def test_switch_refuses_a_version_behind_the_live_one(spare_version, pool, user_id):
    versions, number = spare_version
    live = await versions.live_version()
    topic = TOPIC + "-switch"
    await versions.projection().apply_batch(topic, [Applied(0, 10, event(user_id, "live one"))])
    await versions.projection(number).apply_batch(topic, [Applied(0, 9, event(user_id, "behind"))])
    assert await versions.switch(number, topic) is False
    assert await versions.live_version() == live
    with pytest.raises(ValueError, match="live"):
        await versions.drop(live)


async def test_bulk_load_defers_secondary_indexes_and_rebuilds_every_one(spare_version, pool):
    versions, number = spare_version
    schema = postgres.schema_of(number)

    async def indexes() -> set[str]:
        return {r["indexname"] for r in await pool.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = $1",
                                                         schema)}

    before = await indexes()
    await versions.begin_bulk(number)
    during = await indexes()
    assert "memories_embedding_b0" in before and "memories_embedding_b0" not in during  # a bucket's HNSW
    assert "memories_pkey" in during  # constraints stay: they keep writes idempotent
    built: list[str] = []
    await versions.end_bulk(number, built.append)
    assert await indexes() == before and set(built) == before - during


async def test_a_following_projector_relocates_when_the_live_version_changes(pool, user_id):
    projector = PgProjector(pool)
    await projector.positions(TOPIC)
    projector.version += 1000  # as if it had followed a version that is no longer live
    with pytest.raises(Relocated):
        await projector.apply_batch(TOPIC + "-relocate", [Applied(0, 1, event(user_id, "never written"))])
    assert await pool.fetchval("SELECT count(*) FROM memories WHERE user_id = $1", user_id) == 0
    await projector.positions(TOPIC)  # re-reads the live version
    await projector.apply_batch(TOPIC + "-relocate", [Applied(0, 1, event(user_id, "written"))])
    assert await pool.fetchval("SELECT count(*) FROM memories WHERE user_id = $1", user_id) == 1


async def test_consolidation_archives_sources_and_a_redelivery_changes_nothing(pool, user_id):
    from domain.events import MemoryConsolidated

    projector = PgProjector(pool)
    topic = TOPIC + "-consolidate"
    a, b, other = event(user_id, "likes tea"), event(user_id, "likes green tea"), event(user_id, "uses vim")
    summary = MemoryConsolidated(user_id=user_id, actor="worker:consolidate", memory_id=str(uuid.uuid4()),
                                 source_memory_ids=(a.memory_id, b.memory_id), text="likes tea, green tea most",
                                 embedding=a.embedding, embedding_model="m", reason="near-duplicates",
                                 app_id="chat", importance=0.5, categories=("preference",))
    batch = [Applied(0, 1, a), Applied(0, 2, b), Applied(0, 3, other), Applied(0, 4, summary)]
    await projector.apply_batch(topic, batch)
    await projector.apply_batch(topic, [Applied(0, 4, summary)])  # redelivered
    rows = {r["text"]: r for r in await pool.fetch(
        "SELECT text, state, app_id, occurred_at, version FROM memories WHERE user_id = $1", user_id)}
    assert {t: r["state"] for t, r in rows.items()} == {
        "likes tea": "archived", "likes green tea": "archived", "uses vim": "active",
        "likes tea, green tea most": "active"}
    assert rows["likes tea"]["version"] == 2, "archived once, not again on redelivery"
    assert rows["likes tea, green tea most"]["app_id"] == "chat"
    assert rows["likes tea, green tea most"]["occurred_at"] == summary.occurred_at, "no happened_at: event time"
    history = await pool.fetch("SELECT memory_id, event_type, reason FROM memory_history WHERE event_id = $1",
                               uuid.UUID(summary.event_id))
    assert {str(r["memory_id"]) for r in history} == {summary.memory_id, a.memory_id, b.memory_id}
    assert {r["reason"] for r in history} == {"near-duplicates"}


async def test_forgotten_is_hidden_and_restorable_with_history(pool, user_id):
    from domain.events import MemoryForgotten, MemoryRestored

    projector = PgProjector(pool)
    topic = TOPIC + "-forget"
    m = event(user_id, "old fact")
    forgotten = MemoryForgotten(user_id=user_id, actor="worker:forget", memory_id=m.memory_id,
                                reason="importance 0.03 below 0.05", score=0.03)
    restored = MemoryRestored(user_id=user_id, actor=f"user:{user_id}", memory_id=m.memory_id, reason="asked")
    await projector.apply_batch(topic, [Applied(0, 1, m), Applied(0, 2, forgotten)])
    assert await pool.fetchval("SELECT state FROM memories WHERE id = $1", uuid.UUID(m.memory_id)) == "forgotten"
    await projector.apply_batch(topic, [Applied(0, 3, restored), Applied(0, 2, forgotten)])
    # The redelivered forgetting comes after the restore here, as a new event would: it applies.
    # What must not happen is a second restore or forget changing anything by itself.
    await projector.apply_batch(topic, [Applied(0, 2, forgotten)])
    history = [r["event_type"] for r in await pool.fetch(
        "SELECT event_type FROM memory_history WHERE memory_id = $1 ORDER BY log_offset, occurred_at",
        uuid.UUID(m.memory_id))]
    assert history == ["MemoryCreated", "MemoryForgotten", "MemoryRestored"], "history rows are written once"


async def test_access_events_count_once_per_memory_and_keep_the_latest_time(pool, user_id):
    from domain.events import MemoryAccessed

    projector = PgProjector(pool)
    topic = TOPIC + "-access"
    m, n = event(user_id, "read often"), event(user_id, "read once")
    await projector.apply_batch(TOPIC + "-access-events", [Applied(0, 1, m), Applied(0, 2, n)])
    t1, t2 = datetime(2025, 1, 1, tzinfo=timezone.utc), datetime(2025, 2, 1, tzinfo=timezone.utc)
    reads = [MemoryAccessed(user_id=user_id, actor="user:x", memory_ids=(m.memory_id, m.memory_id, n.memory_id),
                            source="search", occurred_at=t2),
             MemoryAccessed(user_id=user_id, actor="user:x", memory_ids=(m.memory_id, "not-a-uuid"),
                            source="get", occurred_at=t1),
             MemoryAccessed(user_id="someone-else", actor="user:y", memory_ids=(m.memory_id,), source="get")]
    batch = [Applied(1, i, e) for i, e in enumerate(reads)]
    await projector.apply_batch(topic, batch)
    rows = {r["text"]: r for r in await pool.fetch(
        "SELECT text, access_count, last_accessed_at FROM memories WHERE user_id = $1", user_id)}
    assert rows["read often"]["access_count"] == 2, "one per event, another user's read does not count"
    assert rows["read often"]["last_accessed_at"] == t2
    assert rows["read once"]["access_count"] == 1
    assert await projector.positions(topic) == {1: 2}
