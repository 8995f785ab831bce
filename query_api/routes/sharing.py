"""GET /v1/shared (what others shared with a user) and GET /v1/memories/{id}/shares (who a
memory is shared with): reads of the Postgres read model."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query

from adapters.http_api import ApiError
from adapters.http_auth import acting_user
from adapters.json_body import StrictJsonRoute
from domain.identifiers import UUID_PATTERN
from domain.identity import Principal
from query_api import pg_reads
from query_api.deps import QueryDeps
from query_api.routes.errors import answered, user_param


def router(deps: QueryDeps) -> APIRouter:
    routes = APIRouter(route_class=StrictJsonRoute)  # bodies parsed strictly (adapters/json_body.py)
    auth = deps.auth

    @routes.get("/v1/shared", tags=["sharing"], summary="Memories other users shared with this user (read-only)")
    async def shared(principal: Principal = Depends(auth), user_id: str | None = user_param(),
                     page: int = Query(default=1, ge=1, le=100_000),
                     page_size: int = Query(default=100, ge=1, le=1_000)):
        user_id = acting_user(principal, user_id, "read")
        with answered():
            rows, total = await deps.postgres.read(pg_reads.shared_with(deps.pool(), user_id, page_size,
                                                                        (page - 1) * page_size))
        return {"results": rows, "page": page, "page_size": page_size, "total": total,
                "has_more": page * page_size < total}

    @routes.get("/v1/memories/{memory_id}/shares", tags=["sharing"], summary="Who a memory is shared with")
    async def memory_shares(principal: Principal = Depends(auth), memory_id: str = Path(pattern=UUID_PATTERN),
                            user_id: str | None = user_param()):
        user_id = acting_user(principal, user_id, "read", one_memory=True)
        with answered():
            if await deps.postgres.read(pg_reads.get_memory(deps.pool(), memory_id.lower(), user_id)) is None:
                raise ApiError(404, "not_found", f"memory {memory_id} not found", {"field": "memory_id"})
            return {"memory_id": memory_id.lower(),
                    "shares": await deps.postgres.read(pg_reads.shares_of(deps.pool(), memory_id.lower(), user_id))}

    return routes
