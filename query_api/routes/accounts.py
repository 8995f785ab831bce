"""GET /v1/me (who this key is), GET /v1/keys (keys, never secrets) and GET /v1/users
(registered users, admin)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from adapters.http_auth import acting_user, require_admin
from adapters.json_body import StrictJsonRoute
from adapters.key_directory import api_keys
from domain.identifiers import ID_PATTERN
from domain.identity import Principal
from query_api import pg_reads
from query_api.deps import QueryDeps
from query_api.routes.errors import answered


def router(deps: QueryDeps) -> APIRouter:
    routes = APIRouter(route_class=StrictJsonRoute)  # bodies parsed strictly (adapters/json_body.py)
    auth = deps.auth

    @routes.get("/v1/me", tags=["keys"], summary="Who this API key is: its user, scopes and prefix")
    async def me(principal: Principal = Depends(auth)):
        return {"user_id": principal.user_id, "scopes": list(principal.scopes), "key_prefix": principal.key_prefix,
                "key_id": principal.key_id, "auth": "on" if principal.key_prefix else "off"}

    @routes.get("/v1/keys", tags=["keys"], summary="API keys (prefixes and scopes; never secrets)")
    async def list_keys(principal: Principal = Depends(auth),
                        user_id: str | None = Query(default=None, pattern=ID_PATTERN,
                                                    description="whose keys; an admin key without it lists all"),
                        include_revoked: bool = False):
        if not (principal.is_admin and user_id is None):
            user_id = acting_user(principal, user_id, "read")
        with answered():
            return {"results": await deps.postgres.read(api_keys(deps.pool(), user_id, include_revoked))}

    @routes.get("/v1/users", tags=["users"], summary="Registered users (admin)")
    async def list_users(principal: Principal = Depends(auth), page: int = Query(default=1, ge=1, le=100_000),
                         page_size: int = Query(default=100, ge=1, le=1_000)):
        require_admin(principal)
        with answered():
            rows, total = await deps.postgres.read(pg_reads.users(deps.pool(), page_size, (page - 1) * page_size))
        return {"results": rows, "page": page, "page_size": page_size, "total": total,
                "has_more": page * page_size < total}

    return routes
