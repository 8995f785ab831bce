"""Authentication and rate limits for the HTTP APIs (a FastAPI dependency).

A request presents its key as `Authorization: Bearer rsk_...` (or `X-API-Key: rsk_...`, or
`Authorization: Token rsk_...`: mem0's client sends its key with that scheme, docs/mem0.md).
The principal it resolves to, not a `user_id` parameter, decides what the request may
read or write (domain/identity.py): a request may still name a `user_id`, which must
be the key's own unless the key is an admin key.

Statuses: no key or an unknown/revoked/expired key is 401 (with WWW-Authenticate); a
key without the needed scope is 403; another user's data is 403 on a collection (search,
list, add) and 404 on one memory, so a memory's existence never leaks; the key store
unreachable with no recent answer is 503; over a rate limit is 429 with Retry-After.

Rate limits (adapters/rate_limit.py): a request takes a token from its key's bucket and from
its user's, so a user's many keys share one limit. Admin keys are not rate limited, and an
admin key acting for a user does not spend that user's tokens: they are the operator's
(benchmarks, imports, the UI's admin pages), and a limit exists to keep agents from
starving each other. Failed authentications (a presented key that is malformed, unknown,
revoked or expired; not a missing one) are limited per client address
(adapters/client_address.py): once an address has used its allowance, every request from it
that presents a key is answered 429 before the key is looked at, whatever key it is.

The no-auth mode (`RECALLSTACK_AUTH=off`) is for single-user laptops: every request
acts with every scope for the user it names, and each process says so loudly at start.
"""

from __future__ import annotations

import logging

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from adapters.http_api import ApiError
from adapters.client_address import ClientAddress
from adapters.key_directory import DirectoryUnavailable, KeyDirectory
from adapters.rate_limit import Decision, RateLimiter
from domain.identity import NotPermitted, Principal, looks_like_key

log = logging.getLogger(__name__)

_BEARER = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer rsk_...`")
_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key, as an alternative header")

NO_AUTH_WARNING = ("AUTHENTICATION IS OFF (RECALLSTACK_AUTH=off): every request may read and write every user's "
                   "memories. Use this only on a single-user machine bound to loopback.")


class Authenticator:
    """The dependency every /v1 endpoint takes: `principal: Principal = Depends(auth)`."""

    def __init__(self, directory: KeyDirectory | None, limiter: RateLimiter | None = None, required: bool = True,
                 addresses: ClientAddress | None = None):
        if required and directory is None:
            raise ValueError("authentication is on but no key directory was given")
        self.directory, self.limiter, self.required = directory, limiter, required
        self.addresses = addresses or ClientAddress()
        if not required:
            log.warning(NO_AUTH_WARNING)

    async def __call__(self, request: Request,
                       bearer: HTTPAuthorizationCredentials | None = Security(_BEARER),
                       header_key: str | None = Security(_HEADER)) -> Principal:
        if not self.required:
            return Principal.local()
        secret = bearer.credentials if bearer is not None else header_key or mem0_token(request)
        if not secret:
            raise ApiError(401, "unauthenticated", "an API key is required: send `Authorization: Bearer rsk_...` "
                           "(create one with `recallstack keys create`)", headers={"WWW-Authenticate": "Bearer"})
        address = self.addresses.of(request)
        if self.limiter is not None and (wait := self.limiter.blocked_here(address)) is not None:
            self._refuse(Decision(False, max(1, int(wait + 0.999)), "address"), None, address)
        if not looks_like_key(secret):
            await self._failed(address)
            raise ApiError(401, "invalid_api_key", "the API key is malformed (expected rsk_ and 43 characters)",
                           headers={"WWW-Authenticate": "Bearer"})
        try:
            principal = await self.directory.principal(secret)
        except DirectoryUnavailable as exc:  # the detail to the log: a database's text never reaches a client
            log.warning("key directory unavailable: %s", exc)
            raise ApiError(503, "auth_unavailable", "cannot check the API key: Postgres is unreachable",
                           {"dependency": "postgres"}, retry_after=2) from exc
        if principal is None:
            await self._failed(address)
            raise ApiError(401, "invalid_api_key", f"API key {secret[:12]}… is unknown, revoked or expired",
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if self.limiter is not None:
            limited = not principal.is_admin  # admin keys are operators', not agents'
            decision = await self.limiter.admit(address, principal.key_id if limited else None,
                                                principal.user_id if limited else None)
            if not decision.allowed:
                self._refuse(decision, principal, address)
        request.state.principal = principal
        return principal

    async def _failed(self, address: str) -> None:
        """Count a failed authentication of `address` (the 401 follows either way)."""
        if self.limiter is not None:
            await self.limiter.failed(address)

    def _refuse(self, decision: Decision, principal: Principal | None, address: str):
        limiter = self.limiter
        if decision.limit == "address":
            message = (f"too many failed authentications from {address} (at most {limiter.auth_failures_per_minute} "
                       f"a minute); every request from it is refused for {decision.retry_after_s} s")
            code = "too_many_failed_authentications"
        elif decision.limit == "user":
            message = (f"user {principal.user_id} is over its limit of {limiter.per_user_per_minute} requests a "
                       f"minute (all of its API keys together); retry in {decision.retry_after_s} s")
            code = "rate_limited"
        else:
            message = (f"API key {principal.key_prefix}… is over its limit of {limiter.per_minute} requests a "
                       f"minute; retry in {decision.retry_after_s} s")
            code = "rate_limited"
        raise ApiError(429, code, message, {"limit": decision.limit}, retry_after=decision.retry_after_s)


def mem0_token(request: Request) -> str | None:
    """The key of `Authorization: Token <key>`, mem0's scheme, an alias of Bearer (read from the
    header, not declared as a security scheme: the OpenAPI documents keep naming Bearer)."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return (credentials.strip() or None) if scheme.lower() == "token" else None


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
