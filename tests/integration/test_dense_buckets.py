"""Dense search per bucket of users on the real Postgres read model: Python and Postgres put
a user in the same bucket, each bucket has its HNSW index, a dense query of one user can use
its bucket's index whatever the plan, and nothing of another user comes back."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from adapters.vector_buckets import VECTOR_BUCKETS, bucket_expression, in_bucket_of, vector_bucket
from query_api import pg_reads

pytestmark = pytest.mark.integration

USER_IDS = ["alice", "bench-search-10k-708e91", "Zoë Ñandú", "用户-42", "emoji-🦊-user", "a" * 300, "x'); --"]


async def test_python_and_postgres_put_every_user_in_the_same_bucket(pool):
    for user_id in USER_IDS:
        assert await pool.fetchval(f"SELECT {bucket_expression('$1::text')}", user_id) == vector_bucket(user_id)
    assert {vector_bucket(f"user-{n}") for n in range(2000)} == set(range(VECTOR_BUCKETS))


async def test_every_bucket_has_its_hnsw_index_and_no_index_spans_every_user(pool):
    definitions = [r["indexdef"] for r in await pool.fetch(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'memories' AND schemaname ="
        " (SELECT 'rs_pg_v' || version FROM read_model_live WHERE projection = 'postgres')")
        if "USING hnsw" in r["indexdef"]]
    assert len(definitions) == VECTOR_BUCKETS
    assert all("WHERE" in d and "md5(user_id)" in d for d in definitions)


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_a_dense_query_of_one_user_can_use_its_buckets_index(pool, plan_cache_mode):
    user_id = f"bucket-{uuid.uuid4().hex[:8]}"
    vector = np.ones(384, dtype=np.float32) / np.sqrt(384)
    async with pool.acquire() as conn, conn.transaction():
        # Force the index path (a test table is small enough for a sort): the question is
        # whether the planner can prove the bucket's predicate, not whether it prefers it.
        await conn.execute(f"SET LOCAL plan_cache_mode = {plan_cache_mode}; SET LOCAL enable_sort = off;"
                           " SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in await conn.fetch(
            f"EXPLAIN SELECT id FROM memories WHERE user_id = $1 AND state IN ('active') AND {in_bucket_of(user_id)}"
            " ORDER BY embedding <=> $2 LIMIT 10", user_id, vector))
    assert f"memories_embedding_b{vector_bucket(user_id)} " in plan, plan


async def test_dense_finds_the_users_nearest_and_nothing_of_a_user_in_another_bucket(pool):
    from datetime import datetime, timezone

    from domain.events import MemoryCreated
    from projectors.pg_projector import PgProjector
    from projectors.applied import Applied

    mine, other = f"near-{uuid.uuid4().hex[:8]}", None
    while other is None or vector_bucket(other) == vector_bucket(mine):
        other = f"far-{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(40, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    events = [Applied(0, n, MemoryCreated(
        user_id=user, actor="test", memory_id=str(uuid.uuid4()), text=f"{user} memory {n}", agent_id=None,
        run_id=None, app_id=None, metadata={}, categories=(), importance=None, embedding=tuple(vectors[n % 20]),
        embedding_model="test", happened_at=datetime(2024, 1, 1, tzinfo=timezone.utc)))
        for n, user in enumerate([mine] * 20 + [other] * 20)]
    await PgProjector(pool).apply_batch(f"test-buckets-{uuid.uuid4().hex[:6]}", events)
    session = pg_reads.SearchSession()
    found = await pg_reads.dense(pool, vectors[3], pg_reads.Scope(user_id=mine), 5, session, session.ef_search)
    assert [d["user_id"] for d in found] == [mine] * 5
    assert found[0]["memory"] == f"{mine} memory 3" and found[0]["similarity"] == pytest.approx(1.0, abs=1e-5)
