"""API keys from the identity read model (Postgres), with a short in-process cache.

Every service checks keys the same way: hash the presented key, look the hash up in
`api_keys` (a unique index) with every key up its chain (the key that issued it, the key
that issued that one, ...), refuse it when any of them is revoked or expired, or missing
(an erased issuer). So revoking or expiring a key ends the keys it issued, transitively,
as soon as that one revocation is projected: no cascade of events needs to land first.
The cache holds an answer for `ttl_s` (0.5 s by default), so a revocation takes effect in
every process within the projector's lag plus that: well under the 1 s the contract asks.

When Postgres cannot be reached, a key seen valid in the last `stale_s` keeps working
(logged), so a Postgres outage does not turn every write away; a key never seen is
refused with 503 rather than let through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import asyncpg

from adapters import resilience
from adapters.postgres import CONNECTION_ERRORS
from domain.circuit_breaker import CircuitBreaker, CircuitOpen
from domain.retry import RetryPolicy
from domain.identity import MAX_KEY_CHAIN, Principal, hash_key

log = logging.getLogger(__name__)


class DirectoryUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    user_id: str
    prefix: str
    scopes: tuple[str, ...]
    expires_at: datetime | None  # the earliest expiry up the chain
    revoked: bool  # this key or one up its chain is revoked, or the chain is broken
    chain_depth: int = 0

    def principal(self, now: datetime) -> Principal | None:
        if self.revoked or (self.expires_at is not None and self.expires_at <= now):
            return None
        return Principal(self.user_id, self.scopes, self.prefix, key_id=self.key_id, expires_at=self.expires_at,
                         chain_depth=self.chain_depth)

    @classmethod
    def of_chain(cls, rows: list) -> "KeyRecord | None":
        """The record of rows[0] judged with its whole chain (rows: the key, its parent, ...)."""
        if not rows:
            return None
        key, top = rows[0], rows[-1]
        broken = top["parent_key_id"] is not None  # the issuer is not in the read model, or the chain too long
        expiries = [r["expires_at"] for r in rows if r["expires_at"] is not None]
        return cls(str(key["key_id"]), key["user_id"], key["prefix"], tuple(key["scopes"]),
                   min(expiries) if expiries else None,
                   broken or any(r["revoked_at"] is not None for r in rows), len(rows) - 1)


# The key and its ancestors, nearest first; at most MAX_KEY_CHAIN rows (a longer chain is broken).
_CHAIN = f"""
WITH RECURSIVE chain AS (
    SELECT key_id, user_id, prefix, scopes, expires_at, revoked_at, parent_key_id, 0 AS depth
      FROM api_keys WHERE key_hash = $1
    UNION ALL
    SELECT k.key_id, k.user_id, k.prefix, k.scopes, k.expires_at, k.revoked_at, k.parent_key_id, chain.depth + 1
      FROM api_keys k JOIN chain ON k.key_id = chain.parent_key_id
     WHERE chain.depth + 1 < {MAX_KEY_CHAIN}
)
SELECT * FROM chain ORDER BY depth
"""
# Every unrevoked key issued by $1, transitively (depth-bounded like the chain).
_DESCENDANTS = f"""
WITH RECURSIVE issued AS (
    SELECT key_id, user_id, revoked_at, 1 AS depth FROM api_keys WHERE parent_key_id = $1::uuid
    UNION ALL
    SELECT k.key_id, k.user_id, k.revoked_at, issued.depth + 1
      FROM api_keys k JOIN issued ON k.parent_key_id = issued.key_id
     WHERE issued.depth < {MAX_KEY_CHAIN}
)
SELECT key_id::text AS key_id, user_id FROM issued WHERE revoked_at IS NULL ORDER BY depth, key_id
"""


class KeyDirectory:
    def __init__(self, pool: Callable[[], asyncpg.Pool], ttl_s: float = 0.5, stale_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic, breaker: CircuitBreaker | None = None,
                 timeout_s: float = 2.0):
        self._pool, self.ttl_s, self.stale_s, self._clock = pool, ttl_s, stale_s, clock
        # Postgres's breaker (adapters/resilience.py): while it is open, no lookup waits
        # for a dead server; a read, so retried once (jittered) within `timeout_s`.
        self.breaker = breaker or CircuitBreaker("postgres")
        self.timeout_s = timeout_s
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}

    async def principal(self, secret: str) -> Principal | None:
        """The principal of a presented key; None when unknown, revoked or expired."""
        key_hash = hash_key(secret)
        now = self._clock()
        cached = self._cache.get(key_hash)
        if cached is not None and now - cached[0] < self.ttl_s:
            record = cached[1]
        else:
            try:
                record = await resilience.call(self.breaker, lambda: self._lookup(key_hash), timeout_s=self.timeout_s,
                                               failures=CONNECTION_ERRORS, retry=RetryPolicy(attempts=2))
            except (*CONNECTION_ERRORS, CircuitOpen, asyncio.TimeoutError) as exc:
                if cached is not None and cached[1] is not None and now - cached[0] < self.stale_s:
                    log.warning("key directory: Postgres unreachable (%s); using the answer of %.0f s ago for %s",
                                type(exc).__name__, now - cached[0], cached[1].prefix)
                    record = cached[1]
                else:
                    raise DirectoryUnavailable(f"cannot check the API key: Postgres is unreachable "
                                               f"({type(exc).__name__}: {exc})") from exc
            else:
                if len(self._cache) > 10_000:  # unknown keys must not grow it without bound
                    self._cache.clear()
                self._cache[key_hash] = (now, record)
        return None if record is None else record.principal(datetime.now(timezone.utc))

    async def _lookup(self, key_hash: str) -> KeyRecord | None:
        return KeyRecord.of_chain(await self._pool().fetch(_CHAIN, key_hash))


class PgIdentityLookup:
    """The command side's checks on keys and users (the identity read model)."""

    def __init__(self, pool: Callable[[], asyncpg.Pool]):
        self._pool = pool

    async def key(self, key_id: str) -> tuple[str, bool] | None:
        try:
            row = await self._pool().fetchrow("SELECT user_id, revoked_at FROM api_keys WHERE key_id = $1::uuid",
                                              key_id)
        except CONNECTION_ERRORS as exc:
            raise ConnectionError(f"Postgres is unreachable: {exc}") from exc
        return (row["user_id"], row["revoked_at"] is not None) if row else None

    async def descendants(self, key_id: str) -> list[tuple[str, str]]:
        """(key_id, user_id) of every unrevoked key issued by `key_id`, transitively."""
        try:
            rows = await self._pool().fetch(_DESCENDANTS, key_id)
        except CONNECTION_ERRORS as exc:
            raise ConnectionError(f"Postgres is unreachable: {exc}") from exc
        return [(r["key_id"], r["user_id"]) for r in rows]

    async def user_registered(self, user_id: str) -> bool:
        try:
            return bool(await self._pool().fetchval("SELECT true FROM users WHERE user_id = $1", user_id))
        except CONNECTION_ERRORS as exc:
            raise ConnectionError(f"Postgres is unreachable: {exc}") from exc


def _key_document(row) -> dict:
    return {"key_id": str(row["key_id"]), "user_id": row["user_id"], "prefix": row["prefix"],
            "scopes": list(row["scopes"]), "name": row["name"], "created_at": row["created_at"].isoformat(),
            "expires_at": row["expires_at"].isoformat() if row["expires_at"] else None,
            "revoked_at": row["revoked_at"].isoformat() if row["revoked_at"] else None,
            "revoked_reason": row["revoked_reason"]}


async def api_keys(pool: asyncpg.Pool, user_id: str | None, include_revoked: bool) -> list[dict]:
    """Keys (never secrets, never hashes) of one user, or of everyone when user_id is None
    (GET /v1/keys and `recallstack keys list` show the same)."""
    rows = await pool.fetch(
        "SELECT key_id, user_id, prefix, scopes, name, created_at, expires_at, revoked_at, revoked_reason"
        " FROM api_keys WHERE ($1::text IS NULL OR user_id = $1) AND ($2 OR revoked_at IS NULL)"
        " ORDER BY user_id, created_at", user_id, include_revoked)
    return [_key_document(r) for r in rows]


class PgKeyList:
    """The operator's reads of keys (application/key_admin.KeyReads): lists, a key named by its
    id or visible prefix, and whether a secret works (checked as every service checks it)."""

    def __init__(self, pool: Callable[[], asyncpg.Pool]):
        self._pool = pool
        self._directory = KeyDirectory(pool)

    async def listing(self, user_id: str | None, include_revoked: bool) -> list[dict]:
        return await api_keys(self._pool(), user_id, include_revoked)

    async def named(self, ref: str) -> list[tuple[str, str]]:
        """(key_id, user_id) of every key whose id or prefix is `ref`."""
        rows = await self._pool().fetch("SELECT key_id::text AS key_id, user_id FROM api_keys"
                                        " WHERE key_id::text = lower($1) OR prefix = $1", ref)
        return [(r["key_id"], r["user_id"]) for r in rows]

    async def principal(self, secret: str) -> Principal | None:
        return await self._directory.principal(secret)
