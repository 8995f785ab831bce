"""Authentication and per-key rate limits for the HTTP APIs (a FastAPI dependency).

A request presents its key as `Authorization: Bearer rsk_...` (or `X-API-Key: rsk_...`).
The principal it resolves to, not a `user_id` parameter, decides what the request may
read or write (domain/identity.py): a request may still name a `user_id`, which must
be the key's own unless the key is an admin key.

Statuses: no key or an unknown/revoked/expired key is 401 (with WWW-Authenticate); a
key without the needed scope is 403; another user's data is 403 on a collection (search,
list, add) and 404 on one memory, so a memory's existence never leaks; the key store
unreachable with no recent answer is 503; over the rate limit is 429 with Retry-After.
Admin keys are not rate limited: they are the operator's (benchmarks, imports, the UI's
admin pages), and a limit exists to keep agents from starving each other.

The no-auth mode (`RECALLSTACK_AUTH=off`) is for single-user laptops: every request
acts with every scope for the user it names, and each process says so loudly at start.
"""

from __future__ import annotations

import logging

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from adapters.http_api import ApiError
from adapters.key_directory import DirectoryUnavailable, KeyDirectory
from adapters.rate_limit import RateLimiter
from domain.identity import NotPermitted, Principal, looks_like_key

log = logging.getLogger(__name__)

_BEARER = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer rsk_...`")
_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key, as an alternative header")

NO_AUTH_WARNING = ("AUTHENTICATION IS OFF (RECALLSTACK_AUTH=off): every request may read and write every user's "
                   "memories. Use this only on a single-user machine bound to loopback.")


class Authenticator:
    """The dependency every /v1 endpoint takes: `principal: Principal = Depends(auth)`."""

    def __init__(self, directory: KeyDirectory | None, limiter: RateLimiter | None = None, required: bool = True):
        if required and directory is None:
            raise ValueError("authentication is on but no key directory was given")
        self.directory, self.limiter, self.required = directory, limiter, required
        if not required:
            log.warning(NO_AUTH_WARNING)

    async def __call__(self, request: Request,
                       bearer: HTTPAuthorizationCredentials | None = Security(_BEARER),
                       header_key: str | None = Security(_HEADER)) -> Principal:
        if not self.required:
            return Principal.local()
        secret = bearer.credentials if bearer is not None else header_key
        if not secret:
            raise ApiError(401, "unauthenticated", "an API key is required: send `Authorization: Bearer rsk_...` "
                           "(create one with `recallstack keys create`)", headers={"WWW-Authenticate": "Bearer"})
        if not looks_like_key(secret):
            raise ApiError(401, "invalid_api_key", "the API key is malformed (expected rsk_ and 43 characters)",
                           headers={"WWW-Authenticate": "Bearer"})
        try:
            principal = await self.directory.principal(secret)
        except DirectoryUnavailable as exc:
            raise ApiError(503, "auth_unavailable", str(exc), {"dependency": "postgres"}, retry_after=2) from exc
        if principal is None:
            raise ApiError(401, "invalid_api_key", f"API key {secret[:12]}… is unknown, revoked or expired",
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if self.limiter is not None and not principal.is_admin:  # admin keys are operators', not agents'
            decision = await self.limiter.take(principal.key_id or principal.user_id)
            if not decision.allowed:
                raise ApiError(429, "rate_limited", f"API key {principal.key_prefix}… is over its limit of "
                               f"{self.limiter.per_minute} requests a minute; retry in {decision.retry_after_s} s",
                               retry_after=decision.retry_after_s)
        request.state.principal = principal
        return principal


def acting_user(principal: Principal, requested: str | None, action: str, one_memory: bool = False) -> str:
    """The user a request acts on, or the API error that says why it may not.
    `one_memory`: the request is about one memory, so another user's is simply not found."""
    try:
        return principal.acting_user(requested, action)
    except NotPermitted as exc:
        if exc.kind == "user_required":
            raise ApiError(422, "invalid_request", str(exc), {"field": "user_id"}) from exc
        if exc.kind == "user" and one_memory:
            raise ApiError(404, "not_found", "memory not found", {"field": "memory_id"}) from exc
        raise ApiError(403, "forbidden", str(exc)) from exc


def require_admin(principal: Principal) -> None:
    try:
        principal.require_admin()
    except NotPermitted as exc:
        raise ApiError(403, "forbidden", str(exc)) from exc
