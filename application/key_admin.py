"""The operator's key administration: `recallstack keys` and the local admin key of `recallstack up`.

The operator has what the services have (the log, the identity read model), so keys are issued
and revoked by the command API's own use cases (application/command_handlers.py), and each change
returns once the Postgres projection, which every service checks keys against, has applied it:
when a key is printed it works; when a revocation returns, the key is refused everywhere within
the services' key cache. No key is needed: this is how the very first (admin) key is made.
bootstrap.key_admin wires the ports; cli/keys.py adds the admin key file.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from application import command_handlers as handlers
from domain.commands import IssueApiKey, RevokeApiKey
from domain.consistency import ConsistencyToken, NotYetApplied, wait_until_applied
from domain.events import new_id
from domain.identity import IssuedKey, Principal

OPERATOR = "operator:cli"


class KeyCommandFailed(RuntimeError):
    """Refused (no such key, already revoked) or not yet in effect; the message says which."""


class KeyReads(Protocol):
    async def listing(self, user_id: str | None, include_revoked: bool) -> list[dict]:
        """Keys (never secrets, never hashes) of one user, or of everyone when user_id is None."""

    async def named(self, ref: str) -> list[tuple[str, str]]:
        """(key_id, user_id) of every key whose id or visible prefix is `ref`."""

    async def principal(self, secret: str) -> Principal | None:
        """Whom a presented key stands for; None when unknown, revoked or expired."""


@dataclass
class KeyAdmin:
    """The ports of the key administration. `publisher` and `identity` are None for reads only."""
    keys: KeyReads
    applied: Callable[[], Awaitable[dict[int, int]]]  # the Postgres projection's positions in `topic`
    topic: str
    publisher: handlers.Publisher | None = None
    identity: handlers.IdentityLookup | None = None
    projection: str = "postgres"

    def context(self) -> handlers.CommandContext:
        return handlers.CommandContext(publisher=self.publisher, correlation_id=new_id(), identity=self.identity)


async def _projected(admin: KeyAdmin, token: ConsistencyToken, timeout_s: float) -> None:
    """Wait until the Postgres projection (what every service checks keys against) applied `token`."""
    try:
        await wait_until_applied(token.encode(), admin.topic, admin.projection, admin.applied, int(timeout_s * 1000))
    except NotYetApplied as exc:
        raise KeyCommandFailed(f"the Postgres projector did not apply the change within {timeout_s:.0f} s "
                               "(is `recallstack projector postgres` running?); it takes effect once it does") from exc


async def create(admin: KeyAdmin, user_id: str, scopes, name: str | None = None,
                 expires_at: datetime | None = None, timeout_s: float = 30.0) -> IssuedKey:
    issued, _event, token = await handlers.issue_api_key(
        IssueApiKey(user_id=user_id, actor=OPERATOR, scopes=tuple(scopes), name=name, expires_at=expires_at),
        admin.context())
    await _projected(admin, token, timeout_s)
    return issued


async def resolve(admin: KeyAdmin, ref: str) -> tuple[str, str]:
    """(key_id, user_id) of a key named by its id or its visible prefix."""
    found = await admin.keys.named(ref)
    if not found:
        raise KeyCommandFailed(f"no API key with id or prefix {ref!r} (see `recallstack keys list`)")
    if len(found) > 1:
        raise KeyCommandFailed(f"{len(found)} keys have the prefix {ref!r}; name one by its key id")
    return found[0]


async def revoke(admin: KeyAdmin, ref: str, reason: str | None = None, timeout_s: float = 30.0) -> dict:
    key_id, user_id = await resolve(admin, ref)
    try:
        _event, token = await handlers.revoke_api_key(
            RevokeApiKey(user_id=user_id, actor=OPERATOR, key_id=key_id, reason=reason), admin.context())
    except (handlers.AlreadyRevoked, handlers.KeyNotFound) as exc:
        raise KeyCommandFailed(str(exc)) from exc
    await _projected(admin, token, timeout_s)
    return {"key_id": key_id, "user_id": user_id, "revoked": True}


async def listing(admin: KeyAdmin, user_id: str | None, include_revoked: bool) -> list[dict]:
    return await admin.keys.listing(user_id, include_revoked)


async def works(admin: KeyAdmin, secret: str) -> bool:
    """Whether a key is accepted now, checked as every service checks it (its whole chain)."""
    return await admin.keys.principal(secret) is not None
