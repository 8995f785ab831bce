"""The query API (FastAPI): reads only, from the read models."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
from fastapi import FastAPI

from adapters.embedders import Embedder
from adapters.http_api import ApiError, install_error_handlers, install_health
from domain.consistency import InvalidConsistencyToken
from query_api import consistency
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

    async def read_your_writes(token: str | None) -> None:
        if not token:
            return
        try:
            await consistency.wait_for(token, EVENTS_TOPIC, PROJECTION, positions, consistency_wait_ms)
        except InvalidConsistencyToken as exc:
            raise ApiError(400, "invalid_request", str(exc), {"field": "consistency_token"}) from exc
        except consistency.NotYetApplied as exc:
            raise ApiError(503, "not_yet_consistent", f"{exc}; retry shortly", {
                "projection": exc.projection, "missing": [{"partition": p, "offset": o} for p, o in exc.missing],
            }, retry_after=1) from exc

    @app.post("/v1/memories/search", tags=["memories"])
    async def search(body: SearchRequest):
        vector_task = asyncio.create_task(asyncio.to_thread(embedder.embed_one, body.query))
        await read_your_writes(body.consistency_token)
        vector = await vector_task
        scope = {name: getattr(body, name) for name in SCOPE_FIELDS}
        results = await dense_search(pool_ref(), vector, body.user_id, scope, body.limit, body.threshold)
        return {"results": results, "degraded": []}

    return app
