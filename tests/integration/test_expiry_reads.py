"""Memory expiry at the boundary, on the real Postgres read model with an injected clock: every read
of query_api/pg_reads.py that goes through a Scope (list, dense, BM25, trigram, hydration, the shared
memories' scope) drops a memory from its expires_at on: one that expired a millisecond before the
clock is gone, one that expires a second after it is there; include_expired lists them all."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from adapters import postgres
from domain.events import MemoryCreated, MemoryShared, MemoryUpdated
from projectors.applied import Applied
from projectors.pg_projector import PgProjector
from query_api import pg_reads
from query_api.pg_reads import Scope, SearchSession, SharedScope

pytestmark = pytest.mark.integration

CLOCK = datetime(2031, 5, 4, 12, 0, tzinfo=timezone.utc)  # far ahead: the wall clock expires none of them
MS, SECOND = timedelta(milliseconds=1), timedelta(seconds=1)
EXPIRES = {"gone": CLOCK - MS, "at": CLOCK, "there": CLOCK + SECOND, "never": None}
TOPIC = f"test-expiry-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
async def seeded(settings):
    await postgres.migrate(settings.pg_dsn, 384)
    pool = await postgres.create_pool(settings.pg_dsn)
    user, grantee = f"expiry-{uuid.uuid4().hex[:8]}", f"grantee-{uuid.uuid4().hex[:8]}"
    vector = np.ones(384, dtype=np.float32) / np.sqrt(384)
    ids = {name: str(uuid.uuid4()) for name in EXPIRES}
    events = [MemoryCreated(user_id=user, actor="test", memory_id=ids[name], text=f"Deploy freeze notice {name}",
                            embedding=tuple(vector.tolist()), embedding_model="m", happened_at=CLOCK - timedelta(days=1),
                            expires_at=EXPIRES[name] if name != "there" else CLOCK + timedelta(days=9))
              for name in EXPIRES]
    # "there" gets its boundary expiry through an update (MemoryUpdated v2), as a PATCH would give it.
    events.append(MemoryUpdated(user_id=user, actor="test", memory_id=ids["there"], expires_at=EXPIRES["there"]))
    events += [MemoryShared(user_id=user, actor="test", memory_id=ids[name], grantee_user_id=grantee)
               for name in EXPIRES]
    await PgProjector(pool).apply_batch(TOPIC, [Applied(0, n, e) for n, e in enumerate(events)])
    yield pool, user, grantee, ids, vector
    await pool.close()


def _names(ids: dict[str, str], found) -> set[str]:
    found_ids = {f["id"] if isinstance(f, dict) else f[0] for f in found}
    return {name for name, memory_id in ids.items() if memory_id in found_ids}


async def test_a_memory_leaves_every_scoped_read_at_its_expires_at(seeded):
    pool, user, grantee, ids, vector = seeded
    scope = Scope(user, now=CLOCK)
    listed, total = await pg_reads.list_memories(pool, scope, "created_at", True, 10, 0)
    assert _names(ids, listed) == {"there", "never"} and total == 2
    session = SearchSession()
    assert _names(ids, await pg_reads.dense(pool, vector, scope, 10, session, session.ef_search)) == {"there", "never"}
    assert _names(ids, await pg_reads.bm25(pool, "deploy & freez", scope, 10, pg_reads.CorpusStats())) == {
        "there", "never"}
    assert _names(ids, await pg_reads.trigram(pool, ["Deploi"], scope, 10, min_similarity=0.3)) == {"there", "never"}
    assert set(await pg_reads.hydrate(pool, list(ids.values()), scope, None)) == {ids["there"], ids["never"]}
    shared = await pg_reads.dense(pool, vector, SharedScope(grantee, now=CLOCK), 10, session, session.ef_search,
                                  exact=True)
    assert _names(ids, shared) == {"there", "never"}


async def test_one_millisecond_either_side(seeded):
    pool, user, _grantee, ids, _vector = seeded
    before = await pg_reads.hydrate(pool, list(ids.values()), Scope(user, now=CLOCK - 2 * MS), None)
    assert set(before) == {ids["gone"], ids["at"], ids["there"], ids["never"]}
    after = await pg_reads.hydrate(pool, list(ids.values()), Scope(user, now=CLOCK + SECOND), None)
    assert set(after) == {ids["never"]}


async def test_include_expired_lists_them_with_their_expiry(seeded):
    pool, user, _grantee, ids, _vector = seeded
    listed, total = await pg_reads.list_memories(pool, Scope(user, include_expired=True, now=CLOCK), "created_at",
                                                 True, 10, 0)
    assert total == 4
    by_name = {name: next(d for d in listed if d["id"] == memory_id) for name, memory_id in ids.items()}
    assert {name: d["expired"] for name, d in by_name.items()} == {
        "gone": True, "at": True, "there": False, "never": False}
    assert by_name["there"]["expires_at"] == EXPIRES["there"].isoformat() and by_name["never"]["expires_at"] is None
    # a get shows an expired memory (by the wall clock none of these is)
    got = await pg_reads.get_memory(pool, ids["gone"], user)
    assert got is not None and got["expires_at"] == EXPIRES["gone"].isoformat()
