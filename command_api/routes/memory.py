"""PATCH /v1/memories/{id} (update), DELETE /v1/memories/{id} and POST /v1/memories/{id}/restore:
the commands on one memory, checked against its owner in the Postgres read model (after the
X-Consistency-Token it names)."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Header, Path, Request

from adapters.http_auth import acting_user
from adapters.json_body import StrictJsonRoute
from application import command_handlers as handlers
from command_api.deps import CommandDeps
from application.requests import UpdateMemoryRequest
from command_api.routes.running import IDEMPOTENCY_HELP, appended, consistent, run, user_param
from domain.commands import DeleteMemory, RestoreMemory, UpdateMemory
from domain.identifiers import UUID_PATTERN
from domain.identity import Principal


def changed(event, token, kind: str) -> dict:
    return {"results": [{"id": event.memory_id, "event": kind, "status": "processing"}],
            "consistency_token": token.encode()}


def router(deps: CommandDeps) -> APIRouter:
    routes = APIRouter(route_class=StrictJsonRoute)  # bodies parsed strictly (adapters/json_body.py)
    auth = deps.auth

    @routes.patch("/v1/memories/{memory_id}", status_code=202, tags=["memories"],
                  summary="Update text, metadata, categories, importance and/or expiry (expires_at null: never)")
    async def update(body: UpdateMemoryRequest, request: Request, principal: Principal = Depends(auth),
                     memory_id: str = Path(pattern=UUID_PATTERN), user_id: str | None = user_param(),
                     x_consistency_token: str | None = Header(default=None),
                     idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        user_id = acting_user(principal, user_id, "write", one_memory=True)
        await consistent(deps, x_consistency_token)
        command = UpdateMemory(user_id=user_id, actor=principal.actor_for(user_id), memory_id=memory_id.lower(),
                               text=body.text, metadata=body.metadata, importance=body.importance,
                               categories=tuple(body.categories) if body.categories is not None else None,
                               expires_at=body.expiry(datetime.now(timezone.utc)), clears_expiry=body.clears_expiry)

        async def work(ctx):
            return changed(*await appended(handlers.update_memory(command, ctx)), "UPDATE")
        return await run(deps, request, user_id, idempotency_key, work)

    @routes.delete("/v1/memories/{memory_id}", status_code=202, tags=["memories"], summary="Delete one memory")
    async def delete_one(request: Request, principal: Principal = Depends(auth),
                         memory_id: str = Path(pattern=UUID_PATTERN), user_id: str | None = user_param(),
                         x_consistency_token: str | None = Header(default=None),
                         idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        user_id = acting_user(principal, user_id, "write", one_memory=True)
        await consistent(deps, x_consistency_token)
        command = DeleteMemory(user_id=user_id, actor=principal.actor_for(user_id), memory_id=memory_id.lower())

        async def work(ctx):
            return changed(*await appended(handlers.delete_memory(command, ctx)), "DELETE")
        return await run(deps, request, user_id, idempotency_key, work)

    @routes.post("/v1/memories/{memory_id}/restore", status_code=202, tags=["memories"],
                 summary="Restore a forgotten or archived memory (undo the forgetting worker or a consolidation)")
    async def restore(request: Request, principal: Principal = Depends(auth),
                      memory_id: str = Path(pattern=UUID_PATTERN), user_id: str | None = user_param(),
                      x_consistency_token: str | None = Header(default=None),
                      idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        user_id = acting_user(principal, user_id, "write", one_memory=True)
        await consistent(deps, x_consistency_token)
        command = RestoreMemory(user_id=user_id, actor=principal.actor_for(user_id), memory_id=memory_id.lower())

        async def work(ctx):
            return changed(*await appended(handlers.restore_memory(command, ctx)), "RESTORE")
        return await run(deps, request, user_id, idempotency_key, work)

    return routes
