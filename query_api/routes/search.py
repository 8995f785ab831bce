"""POST /v1/memories/search and POST /v1/context: a search query built from the body, run by
the search use case (application/search.py), its timings in Server-Timing."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from adapters.http_api import json_answer
from adapters.http_auth import acting_user
from adapters.json_body import StrictJsonRoute
from application.search import SEARCH_OPTIONS, SOURCES, Found, Query, Search
from domain.identity import Principal
from query_api.deps import QueryDeps
from query_api.pg_reads import Scope
from query_api.requests import ContextRequest, ScopedQuery, SearchRequest
from query_api.routes.errors import answered, parsed_filters
from query_api.search import utc_now


def search_of(body: ScopedQuery, limit: int, options: dict) -> Search:
    """The search a body asks for (422 naming the filter that cannot be used)."""
    scope = Scope.of(body.user_id, body.agent_id, body.run_id, body.app_id, parsed_filters(body.filters),
                     body.include_archived)
    query = Query(body.query, scope, limit, options.get("threshold"), body.reference_time or utc_now(),
                  tuple(options.get("sources") or SOURCES), options.get("weights") or {}, options.get("rrf_k"),
                  options.get("mmr", False), options.get("temporal", "boost"), body.include_shared)
    return Search(query, body.filters, options, body.consistency_token)


def server_timing(response: Response, found: Found) -> None:
    """Where the time went, for browsers' dev tools and the search benchmark."""
    response.headers["Server-Timing"] = ", ".join(f"{name};dur={ms}" for name, ms in found.timings_ms.items())


def router(deps: QueryDeps) -> APIRouter:
    routes = APIRouter(route_class=StrictJsonRoute)  # bodies parsed strictly (adapters/json_body.py)
    auth = deps.auth

    @routes.post("/v1/memories/search", tags=["memories"], summary="Hybrid search (dense + sparse + temporal + graph)")
    async def search(body: SearchRequest, response: Response, principal: Principal = Depends(auth)):
        body = body.model_copy(update={"user_id": acting_user(principal, body.user_id, "read")})
        query = search_of(body, body.limit, body.model_dump(include=set(SEARCH_OPTIONS)))
        with answered():
            if body.as_of is not None:  # the state then, rebuilt from the log (application/as_of.py)
                found = await deps.past.search(query, body.as_of, body.reference_time is not None)
            else:
                found = await deps.searching.search(query)
        server_timing(response, found)
        return json_answer(found.answer, response)

    @routes.post("/v1/context", tags=["memories"], summary="A token-budgeted context block for the next prompt")
    async def context(body: ContextRequest, response: Response, principal: Principal = Depends(auth)):
        body = body.model_copy(update={"user_id": acting_user(principal, body.user_id, "read")})
        query = search_of(body, body.candidates, {"rerank": True} if body.rerank else {})
        with answered():
            if body.as_of is not None:
                answer, found = await deps.past.context(query, body.as_of, body.max_tokens, body.encoding,
                                                        body.reference_time is not None)
            else:
                answer, found = await deps.searching.context(query, body.max_tokens, body.encoding)
        server_timing(response, found)
        return json_answer(answer, response)

    return routes
