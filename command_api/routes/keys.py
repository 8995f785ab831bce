"""POST /v1/keys (issue an API key: the secret is in the answer only) and DELETE /v1/keys/{id}
(revoke one, and the keys it issued)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Path, Query, Request

from adapters.http_api import ApiError
from adapters.http_auth import acting_user
from adapters.json_body import StrictJsonRoute
from application import command_handlers as handlers
from command_api.deps import CommandDeps
from application.requests import IssueKeyRequest
from command_api.routes.running import appended, context_of
from domain.commands import IssueApiKey, RevokeApiKey
from domain.consistency import NotYetApplied, wait_until_applied
from domain.identifiers import ID_PATTERN, UUID_PATTERN
from domain.identity import ChainTooDeep, Principal
from settings import EVENTS_TOPIC

log = logging.getLogger(__name__)
REASON_PATTERN = r"^[^\x00-\x1f\x7f]*$"


def router(deps: CommandDeps) -> APIRouter:
    routes = APIRouter(route_class=StrictJsonRoute)  # bodies parsed strictly (adapters/json_body.py)
    auth = deps.auth

    @routes.post("/v1/keys", status_code=201, tags=["keys"],
                 summary="Issue an API key (the secret is in this answer only; it is stored hashed)")
    async def issue_key(body: IssueKeyRequest, request: Request, principal: Principal = Depends(auth)):
        user_id = acting_user(principal, body.user_id, "write")
        if not principal.is_admin and not set(body.scopes) <= set(principal.scopes) - {"admin"}:
            raise ApiError(403, "forbidden", "scopes: a non-admin key may issue only read or write keys it holds "
                           f"itself ({', '.join(s for s in principal.scopes if s != 'admin')})", {"field": "scopes"})
        try:  # a key issued by a key is its child: revoked with it, expiring no later (domain/identity.py)
            parent_key_id, parent_expires_at = principal.issue_child()
        except ChainTooDeep as exc:
            raise ApiError(403, "forbidden", str(exc)) from exc
        command = IssueApiKey(user_id=user_id, actor=principal.actor_for(user_id), scopes=tuple(body.scopes),
                              name=body.name, expires_at=body.expires_at, parent_key_id=parent_key_id,
                              parent_expires_at=parent_expires_at)
        issued, event, token = await appended(handlers.issue_api_key(command, context_of(deps, request)))
        try:  # answer once the key works: the read model every service checks keys against has it
            await wait_until_applied(token.encode(), EVENTS_TOPIC, "postgres", deps.positions,
                                     deps.consistency_wait_ms)
            usable = True
        except (NotYetApplied, OSError, ConnectionError) as exc:
            log.warning("key %s issued but not yet projected: %s", issued.prefix, exc)
            usable = False
        return {"key_id": issued.key_id, "key": issued.secret, "prefix": issued.prefix, "user_id": user_id,
                "scopes": list(issued.scopes), "name": body.name,
                "expires_at": event.expires_at.isoformat() if event.expires_at else None,
                "parent_key_id": event.parent_key_id,
                "usable": usable, "consistency_token": token.encode(),
                "note": "store the key now: it is shown only once"}

    @routes.delete("/v1/keys/{key_id}", status_code=202, tags=["keys"],
                   summary="Revoke an API key (refused everywhere within a second)")
    async def revoke_key(request: Request, principal: Principal = Depends(auth),
                         key_id: str = Path(pattern=UUID_PATTERN),
                         user_id: str | None = Query(default=None, pattern=ID_PATTERN,
                                                     description="the key's owner; an admin key may omit it"),
                         reason: str | None = Query(default=None, max_length=256, pattern=REASON_PATTERN)):
        key_id = key_id.lower()
        if principal.is_admin and user_id is None:
            found = await appended(deps.base.identity.key(key_id))
            user_id = found[0] if found else principal.user_id or ""
        user_id = acting_user(principal, user_id, "write", one_memory=True)
        command = RevokeApiKey(user_id=user_id, actor=principal.actor_for(user_id), key_id=key_id, reason=reason)
        event, token = await appended(handlers.revoke_api_key(command, context_of(deps, request)))
        return {"key_id": event.key_id, "event": "REVOKE", "status": "processing", "consistency_token": token.encode()}

    return routes
