"""GET /v1/embedder (the deployment's embedding model) and GET /v1/stats/cache (this
process's cache hit ratios)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Depends

from adapters.http_api import ApiError
from adapters.json_body import StrictJsonRoute
from domain.identity import Principal
from query_api.deps import QueryDeps

log = logging.getLogger(__name__)


def router(deps: QueryDeps) -> APIRouter:
    routes = APIRouter(route_class=StrictJsonRoute)  # bodies parsed strictly (adapters/json_body.py)
    auth = deps.auth

    @routes.get("/v1/embedder", tags=["ops"], summary="The embedding model of this deployment: id and dimension")
    async def embedder_info(_: Principal = Depends(auth)):
        """What every stored vector is made with (`embedding_model`, `dim`): an import sends an
        export's vectors only when they match, else the command API embeds the texts again."""
        embedder = deps.embeddings.embedder
        try:
            dim = await asyncio.to_thread(lambda: embedder.dim)  # a remote embedder may probe once
        except Exception as exc:
            log.warning("the embedder's dimension", exc_info=True)
            raise ApiError(503, "embedder_unavailable", f"cannot read the embedder's dimension ({type(exc).__name__})",
                           retry_after=5) from exc
        return {"embedding_model": embedder.model_id, "dim": int(dim)}

    @routes.get("/v1/stats/cache", tags=["ops"], summary="Hit ratios of this process's caches")
    async def cache_stats(_: Principal = Depends(auth)):
        stats = {"embedding_lru": deps.embeddings.lru_ratio.as_dict(),
                 "embedding_redis": deps.embeddings.redis_ratio.as_dict()}
        if deps.answers is not None:
            stats["answers"] = deps.answers.ratio.as_dict()
        return stats

    return routes
