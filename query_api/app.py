"""The query API (FastAPI): reads only, from the read models."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
from fastapi import FastAPI

from adapters.embedders import Embedder
from adapters.http_api import install_error_handlers, install_health, wait_for_token
from query_api.requests import SearchRequest
from query_api.search import SCOPE_FIELDS, dense_search
from settings import EVENTS_TOPIC

PROJECTION = "postgres"


def create_app(embedder: Embedder, pool_ref: Callable[[], asyncpg.Pool],
               positions: Callable[[], Awaitable[dict[int, int]]], consistency_wait_ms: int,
               checks: dict[str, Callable[[], Awaitable[object]]], lifespan=None) -> FastAPI:
    app = FastAPI(title="recallstack query API", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    install_health(app, checks)

    @app.post("/v1/memories/search", tags=["memories"])
    async def search(body: SearchRequest):
        vector_task = asyncio.create_task(asyncio.to_thread(embedder.embed_one, body.query))
        await wait_for_token(body.consistency_token, EVENTS_TOPIC, PROJECTION, positions, consistency_wait_ms)
        vector = await vector_task
        scope = {name: getattr(body, name) for name in SCOPE_FIELDS}
        results = await dense_search(pool_ref(), vector, body.user_id, scope, body.limit, body.threshold)
        return {"results": results, "degraded": []}

    return app
