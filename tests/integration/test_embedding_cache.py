"""The query embedding cache on the real Redis with the int8 query embedder: a vector is made once,
then served by the process's LRU and, to another process (a fresh cache), by Redis; keys name the
vector's maker, so the int8 query vectors and the float32 model's never answer for each other."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import pytest
import redis.asyncio as aioredis

from adapters.embedders import build_embedder, build_query_embedder
from adapters.embedders.minilm import INT8_MODEL_ID, MODEL_ID
from query_api.caches import EmbeddingCache

pytestmark = pytest.mark.integration


@pytest.fixture
async def redis_client(settings):
    client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5)
    yield client
    await client.aclose()


async def stored(client: aioredis.Redis, key: str) -> bytes | None:
    """The cache stores after the answer (in the background): wait for it, a bounded while."""
    for _ in range(100):
        raw = await client.get(key)
        if raw is not None:
            return raw
        await asyncio.sleep(0.02)
    return None


async def test_int8_query_vectors_cached_in_the_lru_and_redis_under_their_own_key(redis_client, tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("embedders")
    documents = build_embedder("minilm", cache_dir=cache_dir)
    queries = build_query_embedder(documents, "int8", cache_dir=cache_dir, spin=False)
    assert (queries.model_id, queries.vector_id) == (MODEL_ID, INT8_MODEL_ID)
    text = f"what did Caroline research in {uuid.uuid4().hex}?"
    first, second = EmbeddingCache(queries, redis_client), EmbeddingCache(queries, redis_client)
    float_cache = EmbeddingCache(documents, redis_client)
    keys = {first._key(text), float_cache._key(text)}
    assert len(keys) == 2
    try:
        vector, origin = await first.embed(text)
        assert origin == "model"
        np.testing.assert_array_equal(vector, queries.embed_one(text))
        assert await stored(redis_client, first._key(text)) == vector.astype(np.float32).tobytes()
        assert (await first.embed(text))[1] == "lru"

        again, origin = await second.embed(text)  # another query API process: its LRU is empty
        assert origin == "redis"
        np.testing.assert_array_equal(again, vector)

        float_vector, origin = await float_cache.embed(text)  # not the int8 entry
        assert origin == "model"
        np.testing.assert_array_equal(float_vector, documents.embed_one(text))
        assert 0.98 < float(float_vector @ vector) < 1.0
        assert await stored(redis_client, float_cache._key(text)) == float_vector.astype(np.float32).tobytes()
    finally:
        await redis_client.delete(*keys)
