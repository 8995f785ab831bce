"""POST /v1/memories/{id}/shares and DELETE /v1/memories/{id}/shares/{grantee}: letting another
user read one memory, and stopping it."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Path, Request

from adapters.http_auth import acting_user
from adapters.json_body import StrictJsonRoute
from application import command_handlers as handlers
from command_api.deps import CommandDeps
from application.requests import ShareRequest
from command_api.routes.running import IDEMPOTENCY_HELP, appended, consistent, run, user_param
from domain.commands import ShareMemory, UnshareMemory
from domain.identifiers import ID_PATTERN, UUID_PATTERN
from domain.identity import Principal


def router(deps: CommandDeps) -> APIRouter:
    routes = APIRouter(route_class=StrictJsonRoute)  # bodies parsed strictly (adapters/json_body.py)
    auth = deps.auth

    @routes.post("/v1/memories/{memory_id}/shares", status_code=202, tags=["sharing"],
                 summary="Let another user read this memory (read-only, until unshared)")
    async def share(body: ShareRequest, request: Request, principal: Principal = Depends(auth),
                    memory_id: str = Path(pattern=UUID_PATTERN), user_id: str | None = user_param(),
                    x_consistency_token: str | None = Header(default=None),
                    idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        user_id = acting_user(principal, user_id, "write", one_memory=True)
        await consistent(deps, x_consistency_token)
        command = ShareMemory(user_id=user_id, actor=principal.actor_for(user_id), memory_id=memory_id.lower(),
                              grantee_user_id=body.grantee_user_id)

        async def work(ctx):
            event, token = await appended(handlers.share_memory(command, ctx))
            return {"results": [{"id": event.memory_id, "event": "SHARE", "grantee_user_id": event.grantee_user_id,
                                 "permission": event.permission, "status": "processing"}],
                    "consistency_token": token.encode()}
        return await run(deps, request, user_id, idempotency_key, work)

    @routes.delete("/v1/memories/{memory_id}/shares/{grantee_user_id}", status_code=202, tags=["sharing"],
                   summary="Stop sharing this memory with a user")
    async def unshare(request: Request, principal: Principal = Depends(auth),
                      memory_id: str = Path(pattern=UUID_PATTERN), grantee_user_id: str = Path(pattern=ID_PATTERN),
                      user_id: str | None = user_param(),
                      idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        user_id = acting_user(principal, user_id, "write", one_memory=True)
        command = UnshareMemory(user_id=user_id, actor=principal.actor_for(user_id), memory_id=memory_id.lower(),
                                grantee_user_id=grantee_user_id)

        async def work(ctx):
            event, token = await appended(handlers.unshare_memory(command, ctx))
            return {"results": [{"id": event.memory_id, "event": "UNSHARE", "grantee_user_id": grantee_user_id,
                                 "status": "processing"}], "consistency_token": token.encode()}
        return await run(deps, request, user_id, idempotency_key, work)

    return routes
