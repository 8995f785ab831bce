"""GET /v1/users/{user_id}/profile: a user's profile (application/profiles.py). A user key reads
its own only (403 for another user's, like every user-scoped read); an admin key reads anyone's."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from adapters.http_api import ApiError
from adapters.http_auth import acting_user
from adapters.json_body import StrictJsonRoute
from application.profiles import ProfileNotFound
from domain.identifiers import ID_PATTERN
from domain.identity import Principal
from query_api.deps import QueryDeps
from query_api.routes.errors import answered, token_param

SUMMARY = "A user's profile: preferences, facts, projects, tools, people and instructions, from their memories"
DESCRIPTION = (
    "The latest version the consolidation worker built (UserProfileUpdated), with `version`, `updated_at`, "
    "`built_from` (the consistency token of the last memory change it reflects) and `stale` (memories changed "
    "since; the next pass refreshes it). A user with memories but no profile yet gets one built on read by the "
    "offline builder (`version` 0, nothing appended); a user without memories gets 404. Each item names the "
    "memory ids it came from.")


def router(deps: QueryDeps) -> APIRouter:
    routes = APIRouter(route_class=StrictJsonRoute)  # bodies parsed strictly (adapters/json_body.py)

    @routes.get("/v1/users/{user_id}/profile", tags=["users"], summary=SUMMARY, description=DESCRIPTION)
    async def user_profile(principal: Principal = Depends(deps.auth), user_id: str = Path(pattern=ID_PATTERN),
                           consistency_token: str | None = token_param()):
        user_id = acting_user(principal, user_id, "read")
        if deps.profiles is None:
            raise ApiError(503, "unavailable", "profiles are not configured on this query API", retry_after=5)
        try:
            with answered():
                return await deps.profiles.get(user_id, consistency_token)
        except ProfileNotFound as exc:
            raise ApiError(404, "not_found", str(exc), {"field": "user_id"}) from exc

    return routes
