"""mem0's reads (its `MemoryClient`: ping, search, get_all, history) on the query API.

Each route translates mem0's body (application/mem0_shapes.py) into the query the native route
builds and runs the same use case (application/search.py, application/reads.py): the same
validation, read-your-writes, caches and errors. mem0's get uses the native path as is (a
trailing slash is the same route; the native memory has every field mem0's has). Its history
shares the native path too: a request in mem0's `Token` scheme gets mem0's list of changes, a
Bearer one the native answer, so this router is included before the native ones. What differs
from mem0: docs/mem0.md.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Body, Depends, Path, Query, Response

from adapters.http_api import json_answer
from adapters.http_auth import acting_user
from adapters.json_body import StrictJsonRoute
from adapters.mem0_http import Mem0SchemeRoute, refusal, validated
from application import mem0_shapes as shapes
from application.reads import ListMemories
from application.search import SEARCH_OPTIONS
from domain.identifiers import UUID_PATTERN
from domain.identity import Principal
from query_api.deps import QueryDeps
from query_api.pg_reads import Scope
from query_api.requests import SearchRequest
from query_api.routes.errors import answered, parsed_filters
from query_api.routes.search import search_of, server_timing


def _shaped(translate, *args):
    try:
        return translate(*args)
    except shapes.Mem0ShapeError as exc:
        raise refusal(exc.field, str(exc).partition(": ")[2]) from exc


def router(deps: QueryDeps) -> APIRouter:
    routes = APIRouter(tags=["mem0"], route_class=StrictJsonRoute)  # bodies parsed strictly (adapters/json_body.py)
    auth = deps.auth

    @routes.get("/v1/ping", summary="mem0's key check (MemoryClient's constructor): who the key is")
    async def mem0_ping(principal: Principal = Depends(auth)):
        return shapes.ping_answer(principal.user_id, list(principal.scopes))

    @routes.post("/v3/memories/search", summary="mem0's search: query, filters (with the entity ids), top_k, threshold")
    async def mem0_search(response: Response, body: dict[str, Any] = Body(description="mem0's search body"),
                          principal: Principal = Depends(auth)):
        native = validated(SearchRequest, _shaped(shapes.search_body, body), shapes.mem0_field)
        native = native.model_copy(update={"user_id": acting_user(principal, native.user_id, "read")})
        # mem0's clients may send rerank=true by habit: without a reranker it is noted in `degraded`, not refused.
        search = replace(search_of(native, native.limit, native.model_dump(include=set(SEARCH_OPTIONS))),
                         rerank_optional=True)
        with answered():
            found = await deps.searching.search(search)
        server_timing(response, found)
        return json_answer(shapes.search_answer(found.answer), response)

    @routes.post("/v3/memories", summary="mem0's get_all: a page of memories matching its filters")
    async def mem0_list(body: dict[str, Any] | None = Body(default=None, description="mem0's get_all body"),
                        principal: Principal = Depends(auth), page: int = Query(default=1, ge=1, le=100_000),
                        page_size: int = Query(default=100, ge=1, le=1_000)):
        wanted = _shaped(shapes.list_scope, body)
        user_id = acting_user(principal, wanted["user_id"], "read")
        scope = Scope.of(user_id, wanted["agent_id"], wanted["run_id"], wanted["app_id"],
                         parsed_filters(wanted["filters"]), False)
        with answered():
            answer = await deps.reading.list_memories(ListMemories(scope, page=page, page_size=page_size))
        return shapes.list_answer(answer, "/v3/memories/")

    async def mem0_history(principal: Principal = Depends(auth), memory_id: str = Path(pattern=UUID_PATTERN)):
        user_id = acting_user(principal, None, "read", one_memory=True)
        with answered():
            answer = await deps.reading.memory_history(memory_id, user_id)
        return shapes.history_answer(answer, user_id)

    routes.add_api_route("/v1/memories/{memory_id}/history", mem0_history, methods=["GET"],
                         route_class_override=Mem0SchemeRoute, include_in_schema=False)
    return routes
