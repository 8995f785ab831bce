"""RedisProjector against the real Redis: one atomic script per batch, idempotent,
read back through RedisReadModel."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from adapters.redis_read_model import RECENT_LIMIT, RedisReadModel, prefix_of
from domain.events import (MemoryAccessed, MemoryConsolidated, MemoryCreated, MemoryDeleted, MemoryForgotten,
                           MemoryRestored, MemoryScopeDeleted, MemoryUpdated, UserRegistered)
from projectors.redis_projector import RedisProjector
from projectors.redis_store import encode
from projectors.applied import Applied

pytestmark = pytest.mark.integration

TOPIC = "recallstack.memory.events"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def created(user_id: str, text: str, minute: int, **fields) -> MemoryCreated:
    return MemoryCreated(user_id=user_id, actor=f"user:{user_id}", memory_id=str(uuid.uuid4()), text=text,
                         embedding=(0.6, 0.8), embedding_model="minilm", occurred_at=T0 + timedelta(minutes=minute),
                         happened_at=datetime(2024, 1, 2, tzinfo=timezone.utc), **fields)


def updated(memory: MemoryCreated, minute: int, user_id: str | None = None, **fields) -> MemoryUpdated:
    return MemoryUpdated(user_id=user_id or memory.user_id, actor="user:x", memory_id=memory.memory_id,
                         occurred_at=T0 + timedelta(minutes=minute), **fields)


def deleted(memory: MemoryCreated, minute: int) -> MemoryDeleted:
    return MemoryDeleted(user_id=memory.user_id, actor="user:x", memory_id=memory.memory_id,
                         occurred_at=T0 + timedelta(minutes=minute))


def consolidated(sources, minute: int, user_id: str | None = None, **fields) -> MemoryConsolidated:
    return MemoryConsolidated(user_id=user_id or sources[0].user_id, actor="worker:consolidate",
                              memory_id=str(uuid.uuid4()), source_memory_ids=tuple(m.memory_id for m in sources),
                              text="summary: " + "; ".join(m.text for m in sources), embedding=(0.6, 0.8),
                              embedding_model="minilm", reason="similar", occurred_at=T0 + timedelta(minutes=minute),
                              **fields)


def forgotten(memory, minute: int) -> MemoryForgotten:
    return MemoryForgotten(user_id=memory.user_id, actor="worker:forget", memory_id=memory.memory_id, reason="decayed",
                           occurred_at=T0 + timedelta(minutes=minute))


def restored(memory, minute: int) -> MemoryRestored:
    return MemoryRestored(user_id=memory.user_id, actor="user:x", memory_id=memory.memory_id,
                          occurred_at=T0 + timedelta(minutes=minute))


@pytest.fixture
async def client(settings):
    client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
    yield client
    await client.aclose()


@pytest.fixture
def version() -> int:
    return random.randrange(10**6, 10**9)  # a version of its own, far from the live ones


@pytest.fixture
async def prefix(client, version):
    prefix = prefix_of(version)
    yield prefix
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)


@pytest.fixture
def projector(client, version) -> RedisProjector:
    return RedisProjector(client, version)


@pytest.fixture
def reads(client, prefix) -> RedisReadModel:
    return RedisReadModel(client, prefix)


async def snapshot(client: aioredis.Redis, prefix: str) -> dict:
    """Every key under the prefix with its whole value."""
    state = {}
    async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        kind = (await client.type(key)).decode()
        if kind == "hash":
            state[key] = await client.hgetall(key)
        elif kind == "zset":
            state[key] = await client.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            state[key] = await client.lrange(key, 0, -1)
        elif kind == "set":
            state[key] = sorted(await client.smembers(key))
        else:
            state[key] = await client.get(key)
    return state


async def test_create_update_delete_read_back(projector, reads, user_id):
    vim = created(user_id, "uses vim", 0, agent_id="ide", metadata={"k": 1}, categories=("tools",), importance=0.5)
    jazz = created(user_id, "likes jazz", 1)
    await projector.apply_batch(TOPIC, [Applied(2, 10, vim), Applied(2, 11, jazz)])

    doc = await reads.get(vim.memory_id)
    assert doc == {
        "id": vim.memory_id, "user_id": user_id, "agent_id": "ide", "run_id": None, "app_id": None,
        "text": "uses vim", "metadata": {"k": 1}, "categories": ["tools"], "importance": 0.5, "state": "active",
        "created_at": vim.occurred_at, "updated_at": vim.occurred_at, "occurred_at": vim.happened_at,
        "version": 1, "embedding_model": "minilm", "expires_at": None,
    }
    assert [d["text"] for d in await reads.recent(user_id, 10)] == ["likes jazz", "uses vim"]

    # None fields stay; metadata is replaced as a whole.
    await projector.apply_batch(TOPIC, [Applied(2, 12, updated(vim, 5, text="uses neovim", metadata={"since": 2024}))])
    doc = await reads.get(vim.memory_id)
    assert (doc["text"], doc["metadata"], doc["categories"], doc["importance"], doc["version"]) == (
        "uses neovim", {"since": 2024}, ["tools"], 0.5, 2)
    assert doc["updated_at"] == T0 + timedelta(minutes=5) and doc["created_at"] == vim.occurred_at
    await projector.apply_batch(TOPIC, [Applied(2, 13, updated(vim, 6, categories=(), importance=0.9))])
    doc = await reads.get(vim.memory_id)
    assert (doc["text"], doc["categories"], doc["importance"], doc["version"]) == ("uses neovim", [], 0.9, 3)

    await projector.apply_batch(TOPIC, [Applied(2, 14, deleted(jazz, 7))])
    assert await reads.get(jazz.memory_id) is None
    tombstone = await reads.get(jazz.memory_id, include_deleted=True)
    assert (tombstone["state"], tombstone["version"]) == ("deleted", 2)
    assert [d["text"] for d in await reads.recent(user_id, 10)] == ["uses neovim"]
    assert await reads.count(user_id) == 1
    assert list(await reads.get_many([vim.memory_id, jazz.memory_id, str(uuid.uuid4())])) == [vim.memory_id]
    assert await reads.positions(TOPIC) == {2: 14}
    assert await projector.positions(TOPIC) == {2: 14}


async def test_scope_delete_takes_exactly_the_matching_memories_created_before_it(projector, reads, user_id):
    music = created(user_id, "likes jazz", 0, agent_id="music", run_id="r1")
    music2 = created(user_id, "hates polka", 1, agent_id="music", run_id="r2")
    code = created(user_id, "uses vim", 2, agent_id="code")
    later = created(user_id, "likes blues", 4, agent_id="music")
    other_user = created(user_id + "-b", "likes jazz too", 0, agent_id="music")
    scope = MemoryScopeDeleted(user_id=user_id, actor="user:x", agent_id="music", run_id="r1",
                               occurred_at=T0 + timedelta(minutes=3))
    await projector.apply_batch(TOPIC, [Applied(0, 1, music), Applied(0, 2, music2), Applied(0, 3, code),
                                        Applied(0, 4, other_user), Applied(0, 5, scope), Applied(0, 6, later)])
    assert [d["text"] for d in await reads.recent(user_id, 10)] == ["likes blues", "uses vim", "hates polka"]
    assert (await reads.get(music.memory_id, include_deleted=True))["state"] == "deleted"

    everything = MemoryScopeDeleted(user_id=user_id, actor="user:x", occurred_at=T0 + timedelta(minutes=9))
    await projector.apply_batch(TOPIC, [Applied(0, 7, everything)])
    assert await reads.recent(user_id, 10) == [] and await reads.count(user_id) == 0
    assert [d["text"] for d in await reads.recent(user_id + "-b", 10)] == ["likes jazz too"]


async def test_redelivered_batch_changes_nothing(client, prefix, projector, reads, user_id):
    a, b = created(user_id, "first", 0, agent_id="x"), created(user_id, "second", 1)
    batch = [Applied(3, 10, a), Applied(3, 11, b), Applied(5, 7, None),
             Applied(3, 12, updated(a, 2, text="first, edited")), Applied(3, 13, deleted(b, 3)),
             Applied(3, 14, MemoryScopeDeleted(user_id=user_id, actor="user:x", agent_id="nobody"))]
    await projector.apply_batch(TOPIC, batch)
    before = await snapshot(client, prefix)
    generation = await reads.generation(user_id)
    assert await projector.apply_items(TOPIC, [encode(item) for item in batch]) == (0, len(batch))
    await projector.apply_batch(TOPIC, batch[2:])  # a partly overlapping redelivery
    assert await snapshot(client, prefix) == before
    assert await reads.generation(user_id) == generation
    assert await reads.positions(TOPIC) == {3: 14, 5: 7}


async def test_watermarks_never_go_back(projector, reads, user_id):
    await projector.apply_batch(TOPIC, [Applied(3, 10, None), Applied(3, 12, None), Applied(1, 5, None)])
    assert await reads.positions(TOPIC) == {1: 5, 3: 12}
    late = created(user_id, "at an old offset", 0)
    assert await projector.apply_items(TOPIC, [encode(Applied(3, 11, late)), encode(Applied(1, 6, None))]) == (1, 1)
    assert await reads.positions(TOPIC) == {1: 6, 3: 12}
    assert await reads.get(late.memory_id) is None and await reads.generation(user_id) == 0
    assert await reads.positions("another-topic") == {}


async def test_generation_changes_on_every_change_and_only_then(projector, reads, user_id):
    seen = [await reads.generation(user_id)]
    offset = iter(range(100, 200))

    async def apply(event, changes: bool):
        await projector.apply_batch(TOPIC, [Applied(4, next(offset), event)])
        now = await reads.generation(user_id)
        assert (now not in seen) if changes else (now == seen[-1]), event
        seen.append(now)

    a, b = created(user_id, "a", 0, run_id="r"), created(user_id, "b", 1)
    await apply(a, True)
    await apply(b, True)
    await apply(updated(a, 2, text="a2"), True)
    await apply(updated(a, 3, metadata={"x": 1}), True)
    await apply(deleted(b, 4), True)
    await apply(updated(b, 5, text="b2"), False)  # deleted
    await apply(deleted(b, 6), False)
    await apply(updated(a, 7, user_id="mallory", text="pwned"), False)  # someone else's memory
    await apply(MemoryScopeDeleted(user_id=user_id, actor="user:x", run_id="other"), False)  # matches nothing
    await apply(MemoryAccessed(user_id=user_id, actor="user:x", memory_ids=(a.memory_id,), source="get"), False)
    await apply(UserRegistered(user_id=user_id, actor="user:x"), False)
    await apply(MemoryScopeDeleted(user_id=user_id, actor="user:x", run_id="r"), True)
    assert (await reads.get(a.memory_id, include_deleted=True))["text"] == "a2"
    assert await reads.positions(TOPIC) == {4: 111}

    c, d = created(user_id, "c", 10), created(user_id, "d", 11)
    await apply(c, True)
    await apply(d, True)
    await apply(forgotten(c, 12), True)
    await apply(forgotten(c, 13), False)  # already forgotten
    await apply(restored(c, 14), True)
    await apply(restored(c, 15), False)  # already active
    summary = consolidated([c, d], 16)
    await apply(summary, True)
    await apply(MemoryConsolidated(**{**summary.__dict__, "event_id": str(uuid.uuid4())}), False)  # exists already
    await apply(forgotten(d, 17), True)  # archived -> forgotten
    await apply(restored(d, 18), True)
    await apply(restored(b, 19), False)  # deleted
    await apply(forgotten(b, 20), False)
    await apply(MemoryForgotten(user_id="mallory", actor="x", memory_id=c.memory_id, reason="x"), False)


async def test_a_malformed_item_fails_the_whole_batch_before_any_write(client, prefix, projector, reads, user_id):
    await projector.apply_batch(TOPIC, [Applied(0, 1, created(user_id, "kept", 0))])
    before = await snapshot(client, prefix)
    good = [encode(Applied(0, 2, created(user_id, "new", 1))), encode(Applied(1, 9, None))]
    bad = encode(Applied(0, 3, created(user_id, "broken", 2)))
    del bad["doc"]["text"]
    with pytest.raises(ResponseError, match="batch item 3: doc.text is missing"):
        await projector.apply_items(TOPIC, good + [bad])
    bad = encode(Applied(0, 3, created(user_id, "broken", 2)))
    bad["score"] = "yesterday"
    with pytest.raises(ResponseError, match="score"):
        await projector.apply_items(TOPIC, good + [bad])
    with pytest.raises(ResponseError, match="unknown op"):
        await projector.apply_items(TOPIC, good + [{"p": "0", "o": "3", "t": "x", "user_id": user_id, "eid": "e"}])
    assert await snapshot(client, prefix) == before
    assert await reads.positions(TOPIC) == {0: 1}


async def test_a_key_that_would_fail_midway_fails_the_batch_before_any_write(client, prefix, projector, reads,
                                                                             user_id):
    """Redis does not roll back a script that errors halfway, so the script checks every
    key it will write first: a corrupt key late in the batch leaves nothing applied."""
    victim = user_id + "-corrupt"
    await client.rpush(f"{prefix}:user:{victim}:gen", "not a counter")
    before = await snapshot(client, prefix)
    batch = [Applied(0, 1, created(user_id, "fine", 0)), Applied(1, 4, None), Applied(0, 2, created(victim, "x", 1))]
    with pytest.raises(ResponseError, match="batch item 3: .*:gen holds a list"):
        await projector.apply_batch(TOPIC, batch)
    assert await snapshot(client, prefix) == before
    assert await reads.recent(user_id, 10) == [] and await reads.positions(TOPIC) == {}


async def test_an_older_version_never_overwrites_a_newer_one(client, prefix, projector, reads, user_id):
    memory = created(user_id, "v1", 0)
    v2, v3 = updated(memory, 1, text="v2"), updated(memory, 2, text="v3")
    await projector.apply_batch(TOPIC, [Applied(6, 10, memory), Applied(6, 11, v2), Applied(6, 12, v3)])
    assert ((await reads.get(memory.memory_id))["text"], (await reads.get(memory.memory_id))["version"]) == ("v3", 3)
    generation = await reads.generation(user_id)
    # The watermarks are lost (or a consumer re-reads from an older offset): the documents
    # still refuse every event at or before the position they reflect.
    await client.delete(f"{prefix}:wm:{TOPIC}")
    before = await snapshot(client, prefix)
    await projector.apply_batch(TOPIC, [Applied(6, 11, v2)])
    await projector.apply_batch(TOPIC, [Applied(6, 10, memory), Applied(6, 11, v2), Applied(6, 12, v3)])
    after = await snapshot(client, prefix)
    after.pop(f"{prefix}:wm:{TOPIC}".encode())
    assert after == before
    doc = await reads.get(memory.memory_id)
    assert (doc["text"], doc["version"]) == ("v3", 3) and await reads.generation(user_id) == generation
    # A scope delete replayed from before a memory existed does not take it either.
    await client.delete(f"{prefix}:wm:{TOPIC}")
    await projector.apply_batch(TOPIC, [Applied(6, 9, MemoryScopeDeleted(user_id=user_id, actor="user:x"))])
    assert (await reads.get(memory.memory_id))["state"] == "active"


async def test_recent_keeps_the_newest_and_refills_after_deletes(client, prefix, projector, reads, user_id):
    memories = [created(user_id, f"m{i}", i) for i in range(RECENT_LIMIT + 5)]
    # Out of created_at order in the log: the recent set still holds the newest.
    await projector.apply_batch(TOPIC, [Applied(7, i, m) for i, m in enumerate(reversed(memories))])
    recent_key = f"{prefix}:user:{user_id}:recent"
    assert await client.zcard(recent_key) == RECENT_LIMIT
    assert [d["text"] for d in await reads.recent(user_id, 3)] == [f"m{RECENT_LIMIT + 4}", f"m{RECENT_LIMIT + 3}",
                                                                   f"m{RECENT_LIMIT + 2}"]
    await projector.apply_batch(TOPIC, [Applied(7, 2000 + i, deleted(memories[-1 - i], 100)) for i in range(3)])
    assert await client.zcard(recent_key) == RECENT_LIMIT
    assert await reads.count(user_id) == RECENT_LIMIT + 2
    page = await reads.recent(user_id, 5, offset=RECENT_LIMIT - 2)  # crosses the end of the recent set
    assert [d["text"] for d in page] == ["m3", "m2", "m1", "m0"]
    assert [d["text"] for d in await reads.recent(user_id, 2)] == [f"m{RECENT_LIMIT + 1}", f"m{RECENT_LIMIT}"]
    assert await reads.recent(user_id, 0) == []


async def test_unicode_round_trips_and_a_decoding_client_reads_the_same(settings, projector, prefix, user_id):
    memory = created(user_id, "naïve café ☕ 😀\ttabs\nlines", 0, metadata={"ключ": ["значение", 1.5, None]},
                     categories=("日本語",), importance=1.0)
    await projector.apply_batch(TOPIC, [Applied(8, 1, memory)])
    text_client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        doc = await RedisReadModel(text_client, prefix).get(memory.memory_id)
        assert (doc["text"], doc["metadata"], doc["categories"], doc["importance"]) == (
            memory.text, memory.metadata, ["日本語"], 1.0)
        assert await RedisReadModel(text_client, prefix).positions(TOPIC) == {8: 1}
        assert [d["id"] for d in await RedisReadModel(text_client, prefix).recent(user_id)] == [memory.memory_id]
    finally:
        await text_client.aclose()


# --- versions (replay builds one beside the live one) ------------------------------------


async def test_switch_moves_readers_only_when_the_new_version_covers_the_live_one(client):
    from adapters.redis_read_model import live_read_model, live_version
    from projectors.redis_versions import RedisVersions
    from projectors.applied import Relocated

    live_key = f"rs:test-live-{uuid.uuid4().hex[:8]}"  # never the real pointer
    old, new = random.randrange(10**6, 10**9), random.randrange(10**6, 10**9)
    versions = RedisVersions(client, live_key)
    await client.set(live_key, old)
    user = f"u-{uuid.uuid4().hex[:8]}"
    first, second = created(user, "first", 1), created(user, "second", 2)
    try:
        follower = versions.projection()
        assert await follower.positions(TOPIC) == {}
        await follower.apply_batch(TOPIC, [Applied(0, 5, first), Applied(1, 2, second)])
        rebuilt = versions.projection(new)
        await rebuilt.apply_batch(TOPIC, [Applied(0, 5, first)])
        assert await versions.switch(new, TOPIC) is False  # partition 1 not there yet
        assert await live_version(client, live_key) == old
        await rebuilt.apply_batch(TOPIC, [Applied(1, 2, second)])
        assert await versions.switch(new, TOPIC) is True
        assert await live_version(client, live_key) == new
        with pytest.raises(Relocated):
            await follower.apply_batch(TOPIC, [Applied(0, 6, deleted(first, 3))])
        assert await follower.positions(TOPIC) == {0: 5, 1: 2}  # the new version's
        await follower.apply_batch(TOPIC, [Applied(0, 6, deleted(first, 3))])
        with pytest.raises(ValueError, match="live"):
            await versions.drop(new)
        assert {old, new} <= set(await versions.versions())
        await versions.drop(old)
        assert [k async for k in client.scan_iter(match=f"{prefix_of(old)}:*")] == []
        reads = RedisReadModel(client, prefix_of(new))
        assert [d["text"] for d in await reads.recent(user)] == ["second"]
        assert (await live_read_model(client)).keys.prefix.startswith("rs:v")
    finally:
        await client.delete(live_key)
        for version in (old, new):
            keys = [k async for k in client.scan_iter(match=f"{prefix_of(version)}:*", count=1000)]
            if keys:
                await client.delete(*keys)


# --- consolidation, forgetting, restoring ---------------------------------------------


async def test_consolidation_stores_the_summary_and_archives_the_sources(client, prefix, projector, reads, user_id):
    a, b, c = created(user_id, "uses vim", 0), created(user_id, "uses neovim", 1), created(user_id, "likes jazz", 2)
    dropped, gone = created(user_id, "likes tea", 3), created(user_id, "likes coffee", 4)
    theirs = created(user_id + "-b", "uses emacs", 0)
    summary = consolidated([a, b, dropped, gone, theirs], 10, user_id=user_id, agent_id="ide", categories=("tools",),
                           importance=0.7, metadata={"merged": 3}, happened_at=datetime(2024, 1, 1, tzinfo=timezone.utc))
    await projector.apply_batch(TOPIC, [Applied(0, i, e) for i, e in enumerate([a, b, c, dropped, gone, theirs])])
    await projector.apply_batch(TOPIC, [Applied(0, 6, forgotten(dropped, 5)), Applied(0, 7, deleted(gone, 6))])
    generation = await reads.generation(user_id)
    await projector.apply_batch(TOPIC, [Applied(0, 8, summary)])

    assert await reads.generation(user_id) > generation  # cached answers are invalidated
    doc = await reads.get(summary.memory_id)
    assert doc == {
        "id": summary.memory_id, "user_id": user_id, "agent_id": "ide", "run_id": None, "app_id": None,
        "text": summary.text, "metadata": {"merged": 3}, "categories": ["tools"], "importance": 0.7,
        "state": "active", "created_at": summary.occurred_at, "updated_at": summary.occurred_at,
        "occurred_at": datetime(2024, 1, 1, tzinfo=timezone.utc), "version": 1, "embedding_model": "minilm",
        "expires_at": None}
    # Active and forgotten sources of the user are archived: out of the hot set, readable with include_archived.
    assert [d["text"] for d in await reads.recent(user_id)] == [summary.text, "likes jazz"]
    assert await reads.count(user_id) == 2
    assert await reads.get(a.memory_id) is None
    states = {m.memory_id: (await reads.get(m.memory_id, include_deleted=True))["state"] for m in (a, b, dropped, gone)}
    assert states == {a.memory_id: "archived", b.memory_id: "archived", dropped.memory_id: "archived",
                      gone.memory_id: "deleted"}
    archived = await reads.get(a.memory_id, include_archived=True)
    assert (archived["version"], archived["updated_at"]) == (2, summary.occurred_at)
    assert set(await reads.get_many([a.memory_id, b.memory_id, c.memory_id], include_archived=True)) == {
        a.memory_id, b.memory_id, c.memory_id}
    assert list(await reads.get_many([a.memory_id, c.memory_id])) == [c.memory_id]
    assert await client.zrange(f"{prefix}:user:{user_id}:inactive", 0, -1, withscores=True) == [
        (m.memory_id.encode(), float(m.occurred_at.timestamp() * 1000)) for m in (a, b, dropped)]
    assert (await reads.get(theirs.memory_id))["state"] == "active"  # someone else's: untouched

    # Redelivered, or a second summary with the same id: nothing changes.
    before = await snapshot(client, prefix)
    await projector.apply_batch(TOPIC, [Applied(0, 8, summary)])
    assert await snapshot(client, prefix) == before
    again = MemoryConsolidated(**{**summary.__dict__, "event_id": str(uuid.uuid4()),
                                  "source_memory_ids": (c.memory_id,)})
    await client.delete(f"{prefix}:wm:{TOPIC}")  # even with the watermarks lost
    await projector.apply_batch(TOPIC, [Applied(0, 8, summary), Applied(0, 9, again)])
    after = await snapshot(client, prefix)
    assert {k: v for k, v in after.items() if b":wm:" not in k} == {k: v for k, v in before.items() if b":wm:" not in k}

    # A scope delete reaches archived memories too.
    await projector.apply_batch(TOPIC, [Applied(0, 10, MemoryScopeDeleted(user_id=user_id, actor="user:x"))])
    assert (await reads.get(a.memory_id, include_deleted=True))["state"] == "deleted"
    assert await client.zcard(f"{prefix}:user:{user_id}:inactive") == 0 and await reads.count(user_id) == 0


async def test_forget_leaves_the_hot_set_and_restore_brings_it_back(client, prefix, projector, reads, user_id):
    memories = [created(user_id, f"m{i}", i) for i in range(4)]
    await projector.apply_batch(TOPIC, [Applied(1, i, m) for i, m in enumerate(memories)])
    m0, m1, m2, m3 = memories
    gen0 = await reads.generation(user_id)

    forget = forgotten(m1, 10)
    await projector.apply_batch(TOPIC, [Applied(1, 10, forget)])
    gen1 = await reads.generation(user_id)
    assert gen1 > gen0
    assert [d["text"] for d in await reads.recent(user_id)] == ["m3", "m2", "m0"] and await reads.count(user_id) == 3
    assert await reads.get(m1.memory_id) is None and await reads.get(m1.memory_id, include_archived=True) is None
    doc = await reads.get(m1.memory_id, include_deleted=True)
    assert (doc["state"], doc["version"], doc["updated_at"]) == ("forgotten", 2, forget.occurred_at)
    before = await snapshot(client, prefix)
    await projector.apply_batch(TOPIC, [Applied(1, 10, forget)])  # redelivered
    await client.delete(f"{prefix}:wm:{TOPIC}")
    await projector.apply_batch(TOPIC, [Applied(1, 10, forget)])  # even with the watermarks lost
    after = await snapshot(client, prefix)
    assert {k: v for k, v in after.items() if b":wm:" not in k} == {k: v for k, v in before.items() if b":wm:" not in k}

    restore = restored(m1, 11)
    await projector.apply_batch(TOPIC, [Applied(1, 11, restore)])
    assert await reads.generation(user_id) > gen1
    assert [d["text"] for d in await reads.recent(user_id)] == ["m3", "m2", "m1", "m0"]  # back in its place
    assert (await reads.get(m1.memory_id))["version"] == 3
    assert await client.zcard(f"{prefix}:user:{user_id}:inactive") == 0
    before = await snapshot(client, prefix)
    await projector.apply_batch(TOPIC, [Applied(1, 11, restore), Applied(1, 12, restore)])  # redelivered
    after = await snapshot(client, prefix)
    assert {k: v for k, v in after.items() if b":wm:" not in k} == {k: v for k, v in before.items() if b":wm:" not in k}

    # A forgotten memory is in the scope of a scope delete, and then nothing restores it.
    await projector.apply_batch(TOPIC, [Applied(1, 13, forgotten(m2, 12)),
                                        Applied(1, 14, MemoryScopeDeleted(user_id=user_id, actor="user:x")),
                                        Applied(1, 15, restored(m2, 14))])
    assert (await reads.get(m2.memory_id, include_deleted=True))["state"] == "deleted"
    assert await reads.recent(user_id) == [] and await client.zcard(f"{prefix}:user:{user_id}:inactive") == 0


async def test_restore_refills_the_recent_set_in_created_order(client, prefix, projector, reads, user_id):
    memories = [created(user_id, f"m{i}", i) for i in range(RECENT_LIMIT + 2)]
    await projector.apply_batch(TOPIC, [Applied(2, i, m) for i, m in enumerate(memories)])
    recent_key = f"{prefix}:user:{user_id}:recent"
    newest, oldest = memories[-1], memories[0]
    await projector.apply_batch(TOPIC, [Applied(2, 5000, forgotten(newest, 9000)),
                                        Applied(2, 5001, forgotten(oldest, 9000))])
    assert await client.zcard(recent_key) == RECENT_LIMIT  # refilled from ids
    assert (await reads.recent(user_id, 1))[0]["text"] == f"m{RECENT_LIMIT}"
    await projector.apply_batch(TOPIC, [Applied(2, 5002, restored(newest, 9001)),
                                        Applied(2, 5003, restored(oldest, 9001))])
    assert await client.zcard(recent_key) == RECENT_LIMIT and await reads.count(user_id) == RECENT_LIMIT + 2
    assert (await reads.recent(user_id, 1))[0]["text"] == f"m{RECENT_LIMIT + 1}"
    assert [d["text"] for d in await reads.recent(user_id, 2, offset=RECENT_LIMIT)] == ["m1", "m0"]


async def test_new_ops_are_checked_before_any_write(client, prefix, projector, reads, user_id):
    a = created(user_id, "kept", 0)
    await projector.apply_batch(TOPIC, [Applied(0, 1, a)])
    before = await snapshot(client, prefix)
    bad = encode(Applied(0, 3, consolidated([a], 2)))
    bad["sources"] = [a.memory_id, 7]
    with pytest.raises(ResponseError, match="batch item 2: sources holds a non-string"):
        await projector.apply_items(TOPIC, [encode(Applied(0, 2, forgotten(a, 1))), bad])
    corrupt = str(uuid.uuid4())
    await client.rpush(f"{prefix}:mem:{corrupt}", "not a hash")
    bad = encode(Applied(0, 3, consolidated([a], 2)))
    bad["sources"] = [corrupt]
    with pytest.raises(ResponseError, match="holds a list"):
        await projector.apply_items(TOPIC, [encode(Applied(0, 2, forgotten(a, 1))), bad])
    await client.delete(f"{prefix}:mem:{corrupt}")
    assert await snapshot(client, prefix) == before


async def test_expiry_travels_in_the_document_and_memory_expired_hides_it(projector, reads, user_id):
    """The Redis read model keeps each memory's expires_at (the search's Postgres-down path filters on it):
    set on create, moved and cleared ('' in the hash) by updates; MemoryExpired hides it as a forget does."""
    from domain.events import MemoryExpired

    at = datetime(2031, 1, 1, tzinfo=timezone.utc)
    a, b = created(user_id, "on call", 0, expires_at=at), created(user_id, "sprint goal", 1)
    await projector.apply_batch(TOPIC, [Applied(4, 0, a), Applied(4, 1, b)])
    assert (await reads.get(a.memory_id))["expires_at"] == at and (await reads.get(b.memory_id))["expires_at"] is None
    later = at + timedelta(days=2)
    await projector.apply_batch(TOPIC, [Applied(4, 2, updated(a, 2, expiry_cleared=True)),
                                        Applied(4, 3, updated(b, 3, expires_at=later))])
    assert (await reads.get(a.memory_id))["expires_at"] is None and (await reads.get(b.memory_id))["expires_at"] == later
    expired = MemoryExpired(user_id=user_id, actor="worker:forget", memory_id=b.memory_id, expires_at=later,
                            occurred_at=T0 + timedelta(minutes=5))
    await projector.apply_batch(TOPIC, [Applied(4, 4, expired)])
    assert await reads.get(b.memory_id) is None
    assert (await reads.get(b.memory_id, include_deleted=True))["state"] == "forgotten"
    assert [d["text"] for d in await reads.recent(user_id)] == ["on call"]
