"""Core memory blocks in the real Postgres read model: the projector's rows equal the in-memory
double's (projectors/in_memory_pg.py) for the same events, redelivery included; the reads the APIs
use (adapters/core_memory_reads.py) answer them; UserErased removes blocks and history."""

from __future__ import annotations

import uuid

import pytest

from adapters.core_memory_reads import PgCoreBlocks
from domain.events import (CoreMemoryBlockAppended, CoreMemoryBlockCreated, CoreMemoryBlockDeleted,
                           CoreMemoryBlockReplaced, UserErased)
from projectors.applied import Applied
from projectors.in_memory_pg import InMemoryPg
from projectors.pg_projection import project_batch
from projectors.pg_projector import PgProjector

pytestmark = pytest.mark.integration


def scenario(user: str) -> list:
    env = dict(user_id=user, actor="t", correlation_id="c")
    return [
        CoreMemoryBlockCreated(**env, label="persona", value="I help.", limit_tokens=50, description="who I am"),
        CoreMemoryBlockCreated(**env, label="human", value="", limit_tokens=40, agent_id="cursor"),
        CoreMemoryBlockAppended(**env, label="persona", content="Be brief.", version=2),
        CoreMemoryBlockReplaced(**env, label="human", old_content="", new_content="Ana, Lyon", version=2,
                                agent_id="cursor", limit_tokens=60),
        CoreMemoryBlockAppended(**env, label="persona", content="raced", version=2),  # a conflict: skipped
        CoreMemoryBlockCreated(**env, label="scratch", value="x", limit_tokens=20),
        CoreMemoryBlockDeleted(**env, label="scratch", version=2),
    ]


async def test_the_store_matches_the_double_and_the_reads_answer(pool):
    user = f"test-{uuid.uuid4().hex[:12]}"
    topic = f"test-core-{uuid.uuid4().hex[:8]}"
    items = [Applied(0, i, e) for i, e in enumerate(scenario(user))]
    projector = PgProjector(pool)
    await projector.apply_batch(topic, items[:4])
    await projector.apply_batch(topic, items[:4])  # redelivered
    await projector.apply_batch(topic, items[4:])
    double = InMemoryPg()
    await project_batch(double, items)

    rows = await pool.fetch("SELECT * FROM core_memory_blocks WHERE user_id = $1", user)
    assert {(r["agent_id"], r["label"]): (r["value"], r["version"], r["limit_tokens"], r["description"])
            for r in rows} == {(k[1], k[2]): (r["value"], r["version"], r["limit_tokens"], r["description"])
                               for k, r in double.core_blocks.items()}
    history = await pool.fetch("SELECT * FROM core_memory_history WHERE user_id = $1 ORDER BY log_offset", user)
    assert [(str(h["event_id"]), h["applied"], h["old_value"], h["new_value"], h["skipped"]) for h in history] == [
        (h["event_id"], h["applied"], h["old_value"], h["new_value"], h["skipped"])
        for h in sorted(double.core_history.values(), key=lambda h: h["log_offset"])]

    reads = PgCoreBlocks(lambda: pool)
    persona = await reads.block(user, None, "persona")
    assert (persona.value, persona.version, persona.agent_id) == ("I help.\nBe brief.", 2, None)
    assert [b.label for b in await reads.blocks(user, (None, "cursor"))] == ["persona", "human"]
    assert [b.label for b in await reads.blocks(user, ("cursor",))] == ["human"]
    assert await reads.block(user, None, "scratch") is None
    changes = await reads.history(user, None, "persona")
    assert [(c["event_type"], c["applied"]) for c in changes] == [
        ("CoreMemoryBlockCreated", True), ("CoreMemoryBlockAppended", True), ("CoreMemoryBlockAppended", False)]
    assert len(await reads.history(user, None, "scratch")) == 2  # a deleted block keeps its history

    await projector.apply_batch(topic, [Applied(0, 100, UserErased(user_id=user, actor="t"))])
    for table in ("core_memory_blocks", "core_memory_history"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table} WHERE user_id = $1", user) == 0
