"""GET /v1/core-memory (a user's blocks, user-wide or one agent's), GET /v1/core-memory/{label} and
GET /v1/core-memory/{label}/history: core memory blocks read from the Postgres read model
(application/core_memory.CoreMemoryReads), after the request's consistency token."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter, Depends, Path, Query

from adapters.http_api import ApiError
from adapters.http_auth import acting_user
from adapters.json_body import StrictJsonRoute
from domain import core_memory
from domain.identifiers import ID_PATTERN
from domain.identity import Principal
from query_api.deps import QueryDeps
from query_api.routes.errors import answered, token_param, user_param


def label_param():
    return Path(pattern=core_memory.LABEL_PATTERN, description="the block's slug: persona, human, project...")


def agent_param():
    return Query(default=None, pattern=ID_PATTERN, description="the agent whose blocks; none: the user-wide ones")


def router(deps: QueryDeps) -> APIRouter:
    routes = APIRouter(route_class=StrictJsonRoute)
    auth = deps.auth

    def reads():
        if deps.core_memory is None:
            raise ApiError(503, "unavailable", "core memory is not configured on this server")
        return deps.core_memory

    @contextmanager
    def found() -> Iterator[None]:
        """A read's failures as HTTP errors, an unknown block as 404 naming the label."""
        try:
            with answered():
                yield
        except core_memory.BlockNotFound as exc:
            raise ApiError(404, "not_found", str(exc), {"field": "label"}) from exc

    @routes.get("/v1/core-memory", tags=["core memory"],
                summary="A user's core memory blocks (user-wide or one agent's)")
    async def list_blocks(principal: Principal = Depends(auth), user_id: str | None = user_param(),
                          agent_id: str | None = agent_param(), consistency_token: str | None = token_param()):
        user_id = acting_user(principal, user_id, "read")
        with answered():
            return await reads().list_blocks(user_id, agent_id, consistency_token)

    @routes.get("/v1/core-memory/{label}", tags=["core memory"], summary="One core memory block")
    async def get_block(principal: Principal = Depends(auth), label: str = label_param(),
                        user_id: str | None = user_param(), agent_id: str | None = agent_param(),
                        consistency_token: str | None = token_param()):
        with found():
            return await reads().get_block(acting_user(principal, user_id, "read"), agent_id, label,
                                           consistency_token)

    @routes.get("/v1/core-memory/{label}/history", tags=["core memory"],
                summary="Every edit of a core memory block, from the log (a deleted block's too)")
    async def block_history(principal: Principal = Depends(auth), label: str = label_param(),
                            user_id: str | None = user_param(), agent_id: str | None = agent_param(),
                            consistency_token: str | None = token_param()):
        with found():
            return await reads().history(acting_user(principal, user_id, "read"), agent_id, label, consistency_token)

    return routes
