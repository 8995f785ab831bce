"""POST /v1/users (register a user) and DELETE /v1/users/{id} (erase one for good): admin only."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request

from adapters.http_api import ApiError
from adapters.http_auth import require_admin
from adapters.json_body import StrictJsonRoute
from application import command_handlers as handlers
from command_api.deps import CommandDeps
from application.requests import RegisterUserRequest
from command_api.routes.keys import REASON_PATTERN
from command_api.routes.running import appended, context_of
from domain.commands import EraseUser, RegisterUser
from domain.identifiers import ID_PATTERN
from domain.identity import Principal


def router(deps: CommandDeps) -> APIRouter:
    routes = APIRouter(route_class=StrictJsonRoute)  # bodies parsed strictly (adapters/json_body.py)
    auth = deps.auth

    @routes.post("/v1/users", status_code=202, tags=["users"], summary="Register a user (admin)")
    async def register_user(body: RegisterUserRequest, request: Request, principal: Principal = Depends(auth)):
        require_admin(principal)
        command = RegisterUser(user_id=body.user_id, actor=principal.actor_for(body.user_id),
                               display_name=body.display_name, is_admin=body.is_admin)
        event, token = await appended(handlers.register_user(command, context_of(deps, request)))
        return {"user_id": event.user_id, "event": "REGISTER", "status": "processing",
                "consistency_token": token.encode()}

    @routes.delete("/v1/users/{user_id}", status_code=202, tags=["users"],
                   summary="Erase a user for good (admin): data keys destroyed, every read model purged")
    async def erase_user(request: Request, principal: Principal = Depends(auth),
                         user_id: str = Path(pattern=ID_PATTERN),
                         confirm: bool = Query(default=False, description="must be true: erasure cannot be undone"),
                         reason: str | None = Query(default=None, max_length=256, pattern=REASON_PATTERN)):
        require_admin(principal)
        if not confirm:
            raise ApiError(422, "invalid_request", "confirm: must be true (erasure destroys the user's data keys and "
                           "cannot be undone)", {"field": "confirm"})
        command = EraseUser(user_id=user_id, actor=principal.actor_for(user_id), reason=reason)
        event, token = await appended(handlers.erase_user(command, context_of(deps, request)))
        return {"user_id": user_id, "event": "ERASE", "event_id": event.event_id, "status": "processing",
                "consistency_token": token.encode()}

    return routes
