"""The key store: each user's data keys, for sealing events (crypto-shredding).

Keys live in Postgres, but NOT in the log and NOT in the versioned read-model schemas: the
`keystore` schema is never written by a projector or dropped by a replay, and is backed up
on its own (`recallstack keystore backup`). Each row holds one key version of one user,
wrapped (AES-GCM) with the master key from secrets.env, so a database dump alone exposes
no key. Erasing a user deletes the key material of every version and keeps the rows as
tombstones: the log's sealed events of that user can never be opened again, and a later
write for the same user id gets a new version. See docs/security.md.

`Keyring` is what producers and consumers use: `encode` seals with the user's current key,
`prefetch` + `decode` open records (one query per batch for the keys not cached).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

import asyncpg

from adapters import kafka_codec
from adapters.postgres import CONNECTION_ERRORS
from domain import sealing
from domain.events import Event
from domain.sealing import DataKey

log = logging.getLogger(__name__)

SCHEMA = "keystore"
SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.user_data_keys (
    user_id      text        NOT NULL,
    version      integer     NOT NULL CHECK (version > 0),
    wrapped_key  bytea,                     -- NULL once destroyed (the row stays: a tombstone)
    created_at   timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz,
    PRIMARY KEY (user_id, version),
    CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL))
);
"""
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('recallstack.keystore:' || $1, 0))"  # per user
_LATEST = ("SELECT version, wrapped_key FROM {schema}.user_data_keys WHERE user_id = $1"
           " ORDER BY version DESC LIMIT 1")
BACKUP_FORMAT = "recallstack-keystore/1"


class KeyStoreUnavailable(ConnectionError):
    """Postgres (the key store) is unreachable: nothing can be sealed or opened now. Transient."""


class KeyMissing(LookupError):
    """A sealed record names a key version the store has never seen (a key store restored
    from a backup older than the record?). Not an erasure: the record is dead-lettered and
    can be retried once the key store is complete again."""


def master_key_bytes(encoded: str) -> bytes:
    if not encoded:
        raise ValueError("no key store master key: set RECALLSTACK_KEYSTORE_MASTER_KEY or run "
                         "`recallstack infra up` once (it writes one into secrets.env)")
    raw = base64.b64decode(encoded)
    if len(raw) != sealing.KEY_BYTES:
        raise ValueError(f"the key store master key must be {sealing.KEY_BYTES} bytes (base64), got {len(raw)}")
    return raw


class KeyStore:
    def __init__(self, dsn: str, master_key: bytes, current_ttl_s: float = 5.0, max_cached_users: int = 100_000,
                 schema: str = SCHEMA):
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
            raise ValueError(f"not a schema name: {schema!r}")
        self.dsn = dsn
        self.schema = schema  # another one only in tests: the real one's keys are wrapped with the real master
        self._master = master_key
        # How long a producer seals with a key without asking the store again: another
        # process's erasure is seen within this time (writes racing it are shredded too).
        self.current_ttl_s = current_ttl_s
        self.max_cached_users = max_cached_users
        self._pools: dict[asyncio.AbstractEventLoop, asyncpg.Pool] = {}  # the access log flushes on its own loop
        self._schema_ready = False
        self._keys: dict[str, dict[int, DataKey | None]] = {}  # user -> version -> key (None: destroyed)
        self._current: dict[str, tuple[DataKey, float]] = {}  # user -> (key to seal with, valid until)

    # --- connections ---------------------------------------------------------------

    def _sql(self, text: str) -> str:
        return text.replace("{schema}", self.schema)

    async def _pool(self) -> asyncpg.Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            try:
                pool = await asyncpg.create_pool(self.dsn, min_size=0, max_size=4, command_timeout=10, timeout=2)
            except CONNECTION_ERRORS as exc:
                raise KeyStoreUnavailable(f"the key store (Postgres) is unreachable: {exc}") from exc
            if loop in self._pools:  # another task of this loop won the race
                await pool.close()
                pool = self._pools[loop]
            else:
                self._pools[loop] = pool
        if not self._schema_ready:
            async def create(conn: asyncpg.Connection) -> None:
                async with conn.transaction():  # processes starting together race on CREATE ... IF NOT EXISTS
                    await conn.execute(_LOCK, "schema")
                    await conn.execute(self._sql(SCHEMA_SQL))
            await self._run(pool, create)
            self._schema_ready = True
        return pool

    @staticmethod
    async def _run(pool: asyncpg.Pool, work):
        try:
            async with pool.acquire() as conn:
                return await work(conn)
        except CONNECTION_ERRORS as exc:
            raise KeyStoreUnavailable(f"the key store (Postgres) is unreachable: {exc}") from exc

    async def close(self) -> None:
        """Close the pool of the current event loop (each loop's user closes its own)."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()

    # --- keys ----------------------------------------------------------------------

    def _remember(self, user_id: str, version: int, key: DataKey | None) -> None:
        if user_id not in self._keys and len(self._keys) >= self.max_cached_users:
            self._keys.pop(next(iter(self._keys)))  # oldest user out: a bound, not an LRU
        self._keys.setdefault(user_id, {})[version] = key

    def _unwrap(self, user_id: str, version: int, wrapped: bytes | None) -> DataKey | None:
        return None if wrapped is None else sealing.unwrap(self._master, user_id, version, bytes(wrapped))

    async def key_for(self, user_id: str, create: bool = True, revive: bool = True) -> DataKey | None:
        """The key to seal `user_id`'s new events with: the latest live version, created
        when there is none (first write, or first write after an erasure). revive=False
        creates none for an erased user (None): what a worker acting on content it read
        before an erasure must not write under a new key."""
        hit = self._current.get(user_id)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]

        async def fetch(conn: asyncpg.Connection) -> DataKey | None:
            row = await conn.fetchrow(self._sql(_LATEST), user_id)
            if row is not None and row["wrapped_key"] is not None:
                return self._unwrap(user_id, row["version"], row["wrapped_key"])
            if not create or (row is not None and not revive):
                return None
            async with conn.transaction():
                await conn.execute(_LOCK, user_id)  # one creator per user; a destroy waits for it
                row = await conn.fetchrow(self._sql(_LATEST), user_id)
                if row is not None and row["wrapped_key"] is not None:  # another process made it meanwhile
                    return self._unwrap(user_id, row["version"], row["wrapped_key"])
                if row is not None and not revive:  # erased meanwhile
                    return None
                key = DataKey(user_id, (row["version"] if row else 0) + 1, sealing.new_key_material())
                await conn.execute(self._sql("INSERT INTO {schema}.user_data_keys (user_id, version, wrapped_key)"
                                                 " VALUES ($1, $2, $3)"), user_id, key.version, sealing.wrap(self._master, key))
                return key

        try:
            key = await self._run(await self._pool(), fetch)
        except KeyStoreUnavailable:
            if hit is None:  # a user this process has not sealed for: no key to seal with
                raise
            # Postgres is down: keep sealing with the key this process last had (no erasure
            # can destroy it meanwhile: that needs the store too). A write racing an erasure
            # made just before the outage is shredded with the user, as docs/security.md says.
            log.warning("key store unreachable: sealing %s's events with the cached key v%d", user_id, hit[0].version)
            return hit[0]
        if key is not None:
            self._remember(user_id, key.version, key)
            self._current[user_id] = (key, time.monotonic() + self.current_ttl_s)
        return key

    async def lookup(self, user_id: str, version: int) -> DataKey | None:
        """Key `version` of `user_id`; None when it was destroyed. Raises KeyMissing."""
        await self.prefetch([(user_id, version)])
        return self.cached(user_id, version)

    async def prefetch(self, refs: Iterable[tuple[str, int]]) -> None:
        """Load the keys of these (user_id, version) pairs that are not cached, in one query."""
        wanted = {(u, v) for u, v in refs if v not in self._keys.get(u, {})}
        if not wanted:
            return
        users, versions = zip(*wanted)
        rows = await self._run(await self._pool(), lambda conn: conn.fetch(
            self._sql("SELECT k.user_id, k.version, k.wrapped_key FROM {schema}.user_data_keys k"
                      " JOIN unnest($1::text[], $2::int[]) AS w(user_id, version)"
                      " ON k.user_id = w.user_id AND k.version = w.version"), list(users), list(versions)))
        for row in rows:
            self._remember(row["user_id"], row["version"],
                           self._unwrap(row["user_id"], row["version"], row["wrapped_key"]))

    def cached(self, user_id: str, version: int) -> DataKey | None:
        """A key from the cache (no I/O, for the sync codec); None when destroyed. Raises
        KeyMissing when it was not loaded (prefetch first) or does not exist."""
        versions = self._keys.get(user_id, {})
        if version not in versions:
            raise KeyMissing(f"data key v{version} of user {user_id!r} is not in the key store "
                             "(restored from an older backup?)")
        return versions[version]

    def is_cached(self, user_id: str, version: int) -> bool:
        return version in self._keys.get(user_id, {})

    def forget(self, user_id: str) -> None:
        """Drop what this process caches of `user_id` (a projector meeting UserErased, or
        another process's destroy): the next use asks the store."""
        self._keys.pop(user_id, None)
        self._current.pop(user_id, None)

    async def destroy(self, user_id: str) -> list[int]:
        """Delete the key material of every version of `user_id` (the rows stay as
        tombstones, so the next key is a new version). Returns the versions destroyed now;
        idempotent."""
        async def work(conn: asyncpg.Connection) -> list[int]:
            async with conn.transaction():
                await conn.execute(_LOCK, user_id)
                rows = await conn.fetch(
                    self._sql("UPDATE {schema}.user_data_keys SET wrapped_key = NULL, destroyed_at = now()"
                              " WHERE user_id = $1 AND wrapped_key IS NOT NULL RETURNING version"), user_id)
                return sorted(r["version"] for r in rows)

        destroyed = await self._run(await self._pool(), work)
        self.forget(user_id)
        return destroyed

    async def versions(self, user_id: str) -> list[dict]:
        """Every key version of a user (no key material): version, created_at, destroyed_at."""
        rows = await self._run(await self._pool(), lambda conn: conn.fetch(
            self._sql("SELECT version, created_at, destroyed_at FROM {schema}.user_data_keys WHERE user_id = $1"
                      " ORDER BY version"), user_id))
        return [dict(r) for r in rows]

    # --- backup and restore (wrapped keys only) --------------------------------------

    async def backup(self, path: Path) -> int:
        """Every row (wrapped keys and tombstones) as JSON Lines, mode 0600. Returns the rows."""
        rows = await self._run(await self._pool(), lambda conn: conn.fetch(
            self._sql("SELECT user_id, version, wrapped_key, created_at, destroyed_at FROM {schema}.user_data_keys"
                      " ORDER BY user_id, version")))
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps({"format": BACKUP_FORMAT, "rows": len(rows)}) + "\n")
            for r in rows:
                out.write(json.dumps({
                    "user_id": r["user_id"], "version": r["version"],
                    "wrapped_key": base64.b64encode(r["wrapped_key"]).decode() if r["wrapped_key"] else None,
                    "created_at": r["created_at"].isoformat(),
                    "destroyed_at": r["destroyed_at"].isoformat() if r["destroyed_at"] else None}) + "\n")
        tmp.replace(path)
        return len(rows)

    async def restore(self, path: Path) -> tuple[int, int]:
        """Add the backup's rows the store lacks; a tombstone (in the store or the backup)
        always wins, so a restore never brings an erased user's key back. Returns (rows
        read, rows offered to the store). Refuses a backup whose keys this master key cannot unwrap."""
        lines = path.read_text().splitlines()
        head = json.loads(lines[0]) if lines else {}
        if head.get("format") != BACKUP_FORMAT:
            raise ValueError(f"{path} is not a key store backup ({BACKUP_FORMAT})")
        rows = [json.loads(line) for line in lines[1:] if line.strip()]
        for r in rows:  # all or nothing: check every wrapped key before writing any
            if r["wrapped_key"]:
                try:
                    sealing.unwrap(self._master, r["user_id"], r["version"], base64.b64decode(r["wrapped_key"]))
                except sealing.SealBroken:
                    raise ValueError(f"{path}: the key of {r['user_id']!r} v{r['version']} does not unwrap with "
                                     "this master key (a backup of another installation?)") from None
        records = [(r["user_id"], r["version"], base64.b64decode(r["wrapped_key"]) if r["wrapped_key"] else None,
                    datetime.fromisoformat(r["created_at"]),
                    datetime.fromisoformat(r["destroyed_at"]) if r["destroyed_at"] else None) for r in rows]

        async def work(conn: asyncpg.Connection) -> int:
            async with conn.transaction():
                await conn.executemany(
                    self._sql("INSERT INTO {schema}.user_data_keys AS k"
                              " (user_id, version, wrapped_key, created_at, destroyed_at)"
                              " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, version) DO UPDATE"
                              " SET wrapped_key = NULL, destroyed_at = coalesce(k.destroyed_at, EXCLUDED.destroyed_at)"
                              " WHERE EXCLUDED.wrapped_key IS NULL AND k.wrapped_key IS NOT NULL"), records)
                return len(records)

        written = await self._run(await self._pool(), work)
        self._keys.clear()
        self._current.clear()
        return len(rows), written

    async def destroy_erased_before(self, erased: dict[str, datetime]) -> dict[str, list[int]]:
        """After a restore: destroy again every key created before its user's UserErased
        (from the log), so an old backup cannot undo an erasure. Returns what it destroyed."""
        done: dict[str, list[int]] = {}
        for user_id, at in erased.items():
            rows = await self._run(await self._pool(), lambda conn: conn.fetch(
                self._sql("UPDATE {schema}.user_data_keys SET wrapped_key = NULL, destroyed_at = now()"
                          " WHERE user_id = $1 AND wrapped_key IS NOT NULL AND created_at <= $2 RETURNING version"),
                user_id, at))
            if rows:
                done[user_id] = sorted(r["version"] for r in rows)
                self.forget(user_id)
        return done


class Keyring:
    """Sealing and opening events through a KeyStore: what every producer and consumer of
    the log uses (wired in bootstrap.py)."""

    def __init__(self, store: KeyStore):
        self.store = store

    async def keys_for(self, events: Sequence[Event], revive: bool = True) -> dict[str, DataKey]:
        """The current key of every user of `events` that has a sealed event among them
        (with revive=False, erased users are left out: see KeyStore.key_for)."""
        users = dict.fromkeys(e.user_id for e in events if sealing.is_sealed_type(e.event_type))
        found = {u: await self.store.key_for(u, revive=revive) for u in users}
        return {u: k for u, k in found.items() if k is not None}

    async def encode(self, event: Event) -> tuple[bytes, list[tuple[str, bytes]]]:
        keys = await self.keys_for([event])
        return kafka_codec.encode(event, keys.get(event.user_id))

    async def prefetch(self, headers: Iterable) -> None:
        refs = [ref for h in headers if (ref := kafka_codec.seal_ref(h)) is not None]
        if refs:
            await self.store.prefetch(refs)

    async def decode(self, value: bytes, headers) -> Event:
        """The event; raises kafka_codec.Shredded (skip it), KeyMissing, KeyStoreUnavailable."""
        ref = kafka_codec.seal_ref(headers)
        if ref is not None and not self.store.is_cached(*ref):
            await self.store.prefetch([ref])
        return kafka_codec.decode(value, headers, self.store.cached)

    def forget(self, user_id: str) -> None:
        self.store.forget(user_id)

    async def destroy(self, user_id: str) -> list[int]:
        return await self.store.destroy(user_id)
