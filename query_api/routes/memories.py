"""GET /v1/memories (list), /v1/memories/{id} (get), /v1/memories/{id}/history and
/v1/namespaces: the read use cases of application/reads.py behind thin routes."""

from __future__ import annotations

import dataclasses
from typing import Literal

from fastapi import APIRouter, Depends, Path, Query

from adapters.http_auth import acting_user
from adapters.json_body import StrictJsonRoute, parse_json
from application.reads import ListMemories
from domain.identifiers import UUID_PATTERN
from domain.identity import Principal
from query_api import pg_reads
from query_api.deps import QueryDeps
from query_api.pg_reads import Scope
from query_api.routes.errors import (answered, as_of_param, parsed_filters, scope_param, token_param,
                                     user_param)

STATE_HELP = ("only memories in this state (any: all but deleted); forgotten ones can be restored with "
              "POST /v1/memories/{id}/restore")
EXPIRED_HELP = ("also memories whose expires_at has passed (each shows `expires_at` and `expired: true`); "
                "by default they leave lists, searches and context at that instant")
VECTORS_HELP = ("add each memory's stored `embedding` (a list of floats) and `embedding_model` (what "
                "`recallstack export --include-vectors` writes); about 8 KB of JSON per memory at 384 dimensions")


def router(deps: QueryDeps) -> APIRouter:
    routes = APIRouter(route_class=StrictJsonRoute)  # bodies parsed strictly (adapters/json_body.py)
    auth = deps.auth

    @routes.get("/v1/memories", tags=["memories"], summary="List memories with filters, paging and sort")
    async def list_memories(
            principal: Principal = Depends(auth), user_id: str | None = user_param(),
            agent_id: str | None = scope_param(), run_id: str | None = scope_param(), app_id: str | None = scope_param(),
            filters: str | None = Query(default=None, max_length=16_384, description="a filter tree as JSON"),
            page: int = Query(default=1, ge=1, le=100_000), page_size: int = Query(default=100, ge=1, le=1_000),
            sort: Literal["created_at", "updated_at", "occurred_at", "importance"] = "created_at",
            order: Literal["asc", "desc"] = "desc", include_archived: bool = False,
            state: Literal["active", "archived", "forgotten", "any"] | None = Query(default=None,
                                                                                   description=STATE_HELP),
            include_vectors: bool = Query(default=False, description=VECTORS_HELP),
            include_expired: bool = Query(default=False, description=EXPIRED_HELP),
            consistency_token: str | None = token_param(), as_of: str | None = as_of_param()):
        user_id = acting_user(principal, user_id, "read")
        parsed = parsed_filters(parse_json(filters, "filters") if filters else None)  # strict: as a body is
        scope = dataclasses.replace(Scope.of(user_id, agent_id, run_id, app_id, parsed, include_archived), state=state,
                                    include_expired=include_expired)
        listing = ListMemories(scope, sort, order == "desc", page, page_size, include_vectors, consistency_token)
        with answered():
            if as_of is not None:
                return await deps.past.list_memories(listing, as_of)
            return await deps.reading.list_memories(listing)

    @routes.get("/v1/memories/{memory_id}", tags=["memories"], summary="One memory")
    async def get_memory(principal: Principal = Depends(auth), memory_id: str = Path(pattern=UUID_PATTERN),
                         user_id: str | None = user_param(), consistency_token: str | None = token_param(),
                         as_of: str | None = as_of_param()):
        user_id = acting_user(principal, user_id, "read", one_memory=True)
        with answered():
            if as_of is not None:
                return await deps.past.get_memory(memory_id, user_id, as_of, consistency_token)
            return await deps.reading.get_memory(memory_id, user_id, consistency_token)

    @routes.get("/v1/memories/{memory_id}/history", tags=["memories"], summary="Every change of one memory")
    async def memory_history(principal: Principal = Depends(auth), memory_id: str = Path(pattern=UUID_PATTERN),
                             user_id: str | None = user_param(), consistency_token: str | None = token_param()):
        user_id = acting_user(principal, user_id, "read", one_memory=True)
        with answered():
            return await deps.reading.memory_history(memory_id, user_id, consistency_token)

    @routes.get("/v1/namespaces", tags=["memories"], summary="A user's apps and agents, with their memory counts")
    async def namespaces(principal: Principal = Depends(auth), user_id: str | None = user_param()):
        user_id = acting_user(principal, user_id, "read")
        with answered():
            return await deps.postgres.read(pg_reads.namespaces(deps.pool(), user_id))

    return routes
