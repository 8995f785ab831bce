"""Filters translated to SQL, run on the real Postgres read model: each selects exactly
the memories it should."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import numpy as np
import pytest

from adapters import postgres
from domain.events import MemoryCreated
from domain.filters import parse
from projectors.pg_projector import PgProjector
from projectors.applied import Applied
from query_api.filter_sql import to_sql

pytestmark = pytest.mark.integration

TOPIC = f"test-filters-{uuid.uuid4().hex[:6]}"
MEMORIES = {  # name -> (agent_id, categories, importance, metadata, happened_at)
    "rust": ("cursor", ["work"], 0.9, {"topic": "rust", "tags": ["lang", "systems"], "stars": 5}, "2024-07-03"),
    "tea": ("chat", ["food"], 0.2, {"topic": "drinks", "stars": 3, "draft": True}, "2024-06-01"),
    "jazz": (None, [], None, {"topic": "music", "note": "Likes Miles Davis"}, "2024-08-10"),
}


@pytest.fixture(scope="module")
async def seeded(settings):
    await postgres.migrate(settings.pg_dsn, 384)
    pool = await postgres.create_pool(settings.pg_dsn)
    user = f"filters-{uuid.uuid4().hex[:8]}"
    vec = np.ones(384, dtype=np.float32) / np.sqrt(384)
    ids = {}
    batch = []
    for n, (name, (agent, cats, imp, meta, happened)) in enumerate(MEMORIES.items()):
        ids[name] = str(uuid.uuid4())
        batch.append(Applied(0, n, MemoryCreated(
            user_id=user, actor="test", memory_id=ids[name], text=f"memory about {name}", agent_id=agent,
            categories=tuple(cats), importance=imp, metadata=meta, embedding=tuple(vec.tolist()), embedding_model="m",
            happened_at=datetime.fromisoformat(happened).replace(tzinfo=timezone.utc))))
    await PgProjector(pool).apply_batch(TOPIC, batch)
    yield pool, user, ids
    await pool.close()


async def _selected(seeded, raw) -> set[str]:
    """The names of the seeded memories the filter selects, through the real Postgres."""
    pool, user, ids = seeded
    args: list = [user]
    rows = await pool.fetch(f"SELECT id::text FROM memories WHERE user_id = $1 AND {to_sql(parse(raw), args)}", *args)
    return {name for name, memory_id in ids.items() if memory_id in {r["id"] for r in rows}}


@pytest.mark.parametrize("raw, expected", [
    ({"agent_id": "cursor"}, {"rust"}),
    ({"agent_id": {"ne": "cursor"}}, {"tea", "jazz"}),
    ({"agent_id": {"in": ["cursor", "chat"]}}, {"rust", "tea"}),
    ({"agent_id": {"nin": ["cursor"]}}, {"tea", "jazz"}),
    ({"agent_id": {"exists": False}}, {"jazz"}),
    ({"categories": {"contains": "work"}}, {"rust"}),
    ({"categories": {"exists": False}}, {"jazz"}),
    ({"importance": {"gte": 0.5}}, {"rust"}),
    ({"occurred_at": {"gte": "2024-07-01", "lt": "2024-08-01"}}, {"rust"}),
    ({"metadata": {"topic": "rust"}}, {"rust"}),
    ({"metadata": {"topic": {"ne": "rust"}}}, {"tea", "jazz"}),
    ({"metadata": {"topic": {"in": ["rust", "music"]}}}, {"rust", "jazz"}),
    ({"metadata": {"topic": {"nin": ["rust"]}}}, {"tea", "jazz"}),
    ({"metadata": {"stars": {"gt": 3}}}, {"rust"}),
    ({"metadata": {"stars": {"lte": 3}}}, {"tea"}),
    ({"metadata": {"tags": {"contains": "systems"}}}, {"rust"}),
    ({"metadata": {"note": {"contains": "miles"}}}, {"jazz"}),
    ({"metadata": {"draft": {"exists": True}}}, {"tea"}),
    ({"metadata": {"draft": True}}, {"tea"}),
    ({"OR": [{"agent_id": "chat"}, {"metadata": {"topic": "music"}}]}, {"tea", "jazz"}),
    ({"NOT": [{"agent_id": "cursor"}]}, {"tea", "jazz"}),
    ({"AND": [{"metadata": {"stars": {"gte": 3}}}, {"NOT": {"metadata": {"draft": {"exists": True}}}}]}, {"rust"}),
    ({"metadata": {"topic": "x') OR TRUE --"}}, set()),
    ({"agent_id": "cursor' OR '1'='1"}, set()),
])
async def test_filter_selects_exactly_its_memories(seeded, raw, expected):
    assert await _selected(seeded, raw) == expected


@pytest.mark.parametrize("raw, expected", [
    # importance is a float32 (`real`) column: values past its range compare as infinities
    ({"importance": {"gt": 1e300}}, set()),
    ({"importance": {"lt": 1e300}}, {"rust", "tea"}),
    ({"importance": {"gte": -1e300}}, {"rust", "tea"}),
    ({"importance": 1e300}, set()),
    ({"importance": {"ne": -1e39}}, {"rust", "tea", "jazz"}),
    ({"importance": {"gt": 1e-300}}, {"rust", "tea"}),
    ({"importance": 0.9}, {"rust"}),  # 0.9 rounds as the stored float32 does
    # metadata numbers compare as numeric: a double's whole range
    ({"metadata": {"stars": {"gt": 1.7e308}}}, set()),
    ({"metadata": {"stars": {"lt": 10 ** 308}}}, {"rust", "tea"}),
    ({"metadata": {"stars": 10 ** 300}}, set()),
    ({"metadata": {"stars": {"in": [-1e308, 5, 1e-300]}}}, {"rust"}),
    ({"metadata": {"stars": {"contains": 1e308}}}, set()),
    # times past datetime's ends in UTC are clamped to them
    ({"occurred_at": {"gt": "0001-01-01T00:00:00+14:00"}}, {"rust", "tea", "jazz"}),
    ({"created_at": {"lt": "9999-12-31T23:00:00-14:00"}}, {"rust", "tea", "jazz"}),
    ({"occurred_at": {"gte": "9999-12-31T23:59:59.999999Z"}}, set()),
    ({"occurred_at": {"lt": "0001-01-01"}}, set()),
])
async def test_out_of_range_values_reach_postgres_only_as_values_it_takes(seeded, raw, expected):
    """Before issue 19 these were DataErrors (value out of float32 range, date value out of range)."""
    assert await _selected(seeded, raw) == expected
