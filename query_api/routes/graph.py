"""GET /v1/graph: a user's entities and relations from the graph read model (Neo4j), once it
applied the request's consistency token."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Query

from adapters.http_api import ApiError, token_error
from adapters.http_auth import acting_user
from adapters.json_body import StrictJsonRoute
from domain.consistency import InvalidConsistencyToken, NotYetApplied
from domain.identity import Principal
from query_api.deps import QueryDeps
from query_api.routes.errors import token_param, user_param

log = logging.getLogger(__name__)


def router(deps: QueryDeps) -> APIRouter:
    routes = APIRouter(route_class=StrictJsonRoute)  # bodies parsed strictly (adapters/json_body.py)

    @routes.get("/v1/graph", tags=["graph"], summary="Entities and relations of a user")
    async def graph(principal: Principal = Depends(deps.auth), user_id: str | None = user_param(),
                    limit: int = Query(default=500, ge=1, le=5_000),
                    include_closed: bool = Query(default=False, description="also relations no longer valid"),
                    consistency_token: str | None = token_param()):
        user_id = acting_user(principal, user_id, "read")
        if deps.user_graph is None:
            raise ApiError(503, "unavailable", "the graph read model is not configured", retry_after=5)
        try:
            await deps.consistency.graph_applied(consistency_token)
            return {"user_id": user_id, **await deps.user_graph(user_id, limit=limit, include_closed=include_closed)}
        except (InvalidConsistencyToken, NotYetApplied) as exc:
            raise token_error(exc) from exc
        except Exception as exc:
            log.warning("graph read failed", exc_info=True)
            raise ApiError(503, "unavailable", f"Neo4j is unreachable ({type(exc).__name__})",
                           {"dependency": "neo4j"}, retry_after=2) from exc

    return routes
