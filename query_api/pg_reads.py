"""The query side's reads of the Postgres read model (the `memories` and `memory_history`
views of the live version).

Column names, operators and ORDER BY come only from this module; every value travels as
a query parameter. `Scope` carries the user and the narrowing every read applies (scope
fields, the parsed filter tree, which states count, and expiry), so no source can forget it.

Expiry is a read-time filter against the clock (domain/expiry.py): a memory whose `expires_at`
has passed leaves every read at that instant, before the forget worker records MemoryExpired.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

import asyncpg
import numpy as np

from adapters.vector_buckets import in_bucket_of
from application.memory_document import memory_document
from domain.filters import SCOPE_FIELDS, Node
from query_api.filter_sql import to_sql

MEMORY_COLUMNS = ("id, user_id, agent_id, run_id, app_id, text, metadata, categories, importance, state,"
                  " created_at, updated_at, occurred_at, version, access_count, last_accessed_at, expires_at")
SORTABLE = ("created_at", "updated_at", "occurred_at", "importance")
# b = 0: no length normalisation. Memories are short utterances; on the LoCoMo dev split
# normalising costs ~0.04 hit@10 (0.676 at b = 0.75, 0.721 at b = 0; docs/search.md).
BM25_K1, BM25_B = 1.2, 0.0
BM25_PER_TERM = 250  # candidate documents per query term (df is exact below it)
STATS_TTL_S = 30.0


LISTABLE_STATES = ("active", "archived", "forgotten", "any")


@dataclass(frozen=True)
class Scope:
    user_id: str
    fields: dict[str, str] = field(default_factory=dict)  # agent_id / run_id / app_id -> value
    filters: Node | None = None
    include_archived: bool = False
    state: str | None = None  # list only: exactly this state ("any": all but deleted); overrides include_archived
    include_expired: bool = False  # list only: also memories whose expires_at has passed
    now: datetime | None = None  # the clock expiry is judged by (None: the time of the query)

    @classmethod
    def of(cls, user_id: str, agent_id: str | None, run_id: str | None, app_id: str | None,
           filters: Node | None, include_archived: bool) -> "Scope":
        """The scope of a request: the scope fields it names, its filters."""
        named = {"agent_id": agent_id, "run_id": run_id, "app_id": app_id}
        return cls(user_id, {n: v for n, v in named.items() if v is not None}, filters, include_archived)

    def where(self, args: list, column_prefix: str = "") -> str:
        """The WHERE condition of this scope; parameters appended to `args`."""
        args.append(self.user_id)
        states = ({"any": "('active', 'archived', 'forgotten')"}.get(self.state, f"('{self.state}')")
                  if self.state in LISTABLE_STATES else
                  "('active', 'archived')" if self.include_archived else "('active')")
        parts = [f"{column_prefix}user_id = ${len(args)}", f"{column_prefix}state IN {states}"]
        if not self.include_expired:
            parts.append(self.unexpired(args, column_prefix))
        for name in SCOPE_FIELDS:
            if self.fields.get(name) is not None:
                args.append(self.fields[name])
                parts.append(f"{column_prefix}{name} = ${len(args)}")
        if self.filters is not None:
            parts.append(to_sql(self.filters, args))
        return " AND ".join(parts)

    def unexpired(self, args: list, column_prefix: str = "") -> str:
        """The condition that keeps memories not expired at this scope's clock."""
        args.append(self.now or datetime.now(timezone.utc))
        return f"({column_prefix}expires_at IS NULL OR {column_prefix}expires_at > ${len(args)})"


@dataclass(frozen=True)
class SharedScope(Scope):
    """Other users' active memories shared with `user_id` (the grantee), for a search with
    `include_shared`. The request's filters narrow them too; its scope fields (agent, run,
    app) are the grantee's own and do not. The owner is checked against the share, as in
    `get_shared_memory`, so a share names one memory of one owner."""

    def where(self, args: list, column_prefix: str = "") -> str:
        args.append(self.user_id)
        parts = [f"{column_prefix}state = 'active'",
                 f"({column_prefix}id, {column_prefix}user_id) IN (SELECT memory_id, user_id FROM memory_shares"
                 f" WHERE grantee_user_id = ${len(args)})", self.unexpired(args, column_prefix)]
        if self.filters is not None:
            parts.append(to_sql(self.filters, args))
        return " AND ".join(parts)


SOURCE_TIMEOUT_MS = 1_000  # a source query still running then is cancelled by Postgres itself


@dataclass(frozen=True)
class SearchSession:
    """How every connection of the search pool is set up once, when it connects, so a
    source is one round trip: no transaction and no SET per query.

    - statement_timeout: a search that stopped waiting for a source must not leave its
      query running (under load, abandoned queries pile up and starve the next searches);
    - plan_cache_mode: asyncpg prepares statements, and after five runs Postgres may switch
      to a generic plan that ignores the values; for these queries (a name with an exact
      match or not, a rare or common term) the plan must see them, or 20 ms becomes 900 ms;
    - hnsw.iterative_scan: filtered HNSW scans keep going until enough rows pass (pgvector 0.8);
    - hnsw.ef_search: the search's usual depth (a deeper one sets its own, in a transaction)."""
    timeout_ms: int = SOURCE_TIMEOUT_MS
    ef_search: int = 100

    def server_settings(self) -> dict[str, str]:
        return {"statement_timeout": str(int(self.timeout_ms)), "plan_cache_mode": "force_custom_plan",
                "hnsw.iterative_scan": "relaxed_order", "hnsw.ef_search": str(int(self.ef_search))}


async def keep_session(_conn: asyncpg.Connection) -> None:
    """The search pool's reset on release: nothing. Search queries change no session state
    (their SETs are LOCAL to a transaction), and asyncpg's default (RESET ALL, UNLISTEN,
    CLOSE ALL) would cost every query a second round trip."""


@asynccontextmanager
async def source_connection(pool: asyncpg.Pool, *settings: str):
    """A search-pool connection in a transaction with `settings` ("name = value") SET LOCAL,
    in one round trip: for the few queries whose settings differ from the session's."""
    async with pool.acquire() as conn, conn.transaction():
        if settings:
            await conn.execute("; ".join(f"SET LOCAL {setting}" for setting in settings))
        yield conn


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


EXACT_BELOW = 2_000  # a time window with fewer rows is ranked exactly (btree + sort); more: HNSW


async def dense(pool: asyncpg.Pool, vector: np.ndarray, scope: Scope, limit: int, session: SearchSession,
                ef_search: int, window: tuple[datetime, datetime] | None = None,
                exact: bool = False) -> list[dict]:
    """The nearest memories as documents (memory_document + `similarity`), nearest first:
    whole rows, so the search does not fetch them again. `window` narrows to occurred_at in
    [start, end). The usual case (no window, the session's ef_search) is one round trip.

    With a window the planner must pick between HNSW (walking vectors until enough fall in
    the window: slow for a narrow one) and the (user_id, occurred_at) index with an exact
    sort (slow for a wide one). A bounded count decides: below EXACT_BELOW rows, exact;
    above, HNSW with iterative scans. `exact`: always the exact sort (a scope of few rows
    spread over every user's vectors, such as the memories shared with one user)."""
    def condition(args: list) -> str:
        where = scope.where(args)
        if window is not None:
            args += [window[0], window[1]]
            where += f" AND occurred_at >= ${len(args) - 1} AND occurred_at < ${len(args)}"
        return where

    args: list = [vector]
    where = condition(args)
    if not exact and not isinstance(scope, SharedScope):
        where += " AND " + in_bucket_of(scope.user_id)  # the user's bucket's HNSW index
    args.append(limit)

    def select(distance: str) -> str:
        return (f"SELECT {MEMORY_COLUMNS}, 1 - (embedding <=> $1) AS similarity FROM memories WHERE {where}"
                f" ORDER BY {distance} LIMIT ${len(args)}")

    if exact:
        rows = await pool.fetch(select("(embedding <=> $1) + 0"), *args)  # not the indexed expression: no HNSW
    elif window is None:
        if ef_search == session.ef_search:
            rows = await pool.fetch(select("embedding <=> $1"), *args)
        else:
            async with source_connection(pool, f"hnsw.ef_search = {int(ef_search)}") as conn:
                rows = await conn.fetch(select("embedding <=> $1"), *args)
    else:
        count_args: list = []
        async with source_connection(pool, f"hnsw.ef_search = {int(ef_search)}") as conn:
            few = await conn.fetchval(f"SELECT count(*) FROM (SELECT 1 FROM memories WHERE {condition(count_args)}"
                                      f" LIMIT {EXACT_BELOW}) w", *count_args)
            if few < EXACT_BELOW:
                rows = await conn.fetch(select("(embedding <=> $1) + 0"), *args)
            else:
                await conn.execute("SET LOCAL enable_sort = off")  # the planner would sort the window: HNSW
                rows = await conn.fetch(select("embedding <=> $1"), *args)
    found = []
    for row in rows:
        doc = memory_document(row)
        doc["similarity"] = float(row["similarity"])
        found.append(doc)
    found.sort(key=lambda d: -d["similarity"])  # relaxed_order may return near-ties slightly out of order
    return found


class CorpusStats:
    """Per-user document count and average length (in lexemes) for BM25, cached briefly:
    they move slowly and counting 100k rows on every query would cost more than the query."""

    def __init__(self, ttl_s: float = STATS_TTL_S):
        self.ttl_s = ttl_s
        self._cache: dict[tuple, tuple[float, int, float]] = {}
        self._refreshing: set[tuple] = set()

    async def get(self, pool: asyncpg.Pool, scope: Scope) -> tuple[int, float]:
        """Fresh figures, or stale ones while a refresh runs in the background (counting a
        100k-memory user takes ~100 ms: not something a search should wait for twice)."""
        key = (scope.user_id, scope.include_archived)
        hit = self._cache.get(key)
        if hit is None or hit[1] == 0:  # nothing known (or an empty user, cheap to count again)
            return await self._refresh(pool, key)
        if time.monotonic() - hit[0] >= self.ttl_s and key not in self._refreshing:
            self._refreshing.add(key)
            task = asyncio.ensure_future(self._refresh(pool, key))
            task.add_done_callback(lambda t, k=key: (self._refreshing.discard(k), t.cancelled() or t.exception()))
        return hit[1], hit[2]

    async def _refresh(self, pool: asyncpg.Pool, key: tuple) -> tuple[int, float]:
        args: list = []
        where = Scope(key[0], include_archived=key[1]).where(args)
        row = await pool.fetchrow(f"SELECT count(*) AS n, avg(length(tsv)) AS avgdl FROM memories WHERE {where}",
                                  *args)
        n, avgdl = int(row["n"]), max(float(row["avgdl"] or 1.0), 1.0)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), n, avgdl)
        return n, avgdl


async def bm25(pool: asyncpg.Pool, tsquery: str, scope: Scope, limit: int,
               stats: CorpusStats) -> list[tuple[str, float]]:
    """(id, BM25 score), best first: Okapi BM25 over the stored tsvectors (English stemming).

    Candidates are gathered per query term, at most BM25_PER_TERM documents each, so a rare
    term's documents are always all there however common the other terms are. Document
    frequencies are counted among the candidates: exact for every term below the cap; a
    term at the cap is common, and its (underestimated) df still gives it a low weight."""
    n, avgdl = await stats.get(pool, scope)
    args: list = [tsquery]
    where = scope.where(args, "m.")
    args += [BM25_PER_TERM, float(max(n, 1)), avgdl, BM25_K1, BM25_B, limit]
    c, n_arg, avgdl_arg, k1, b, lim = (f"${i}" for i in range(len(args) - 5, len(args) + 1))
    # Typed here: beside integer columns Postgres would take them for int4 (1.2 -> 1).
    n_arg, avgdl_arg, k1, b = (f"{arg}::float8" for arg in (n_arg, avgdl_arg, k1, b))
    sql = f"""
WITH lexemes AS (SELECT lexeme FROM unnest(to_tsvector('english', replace($1, '|', ' ')))),
cand AS MATERIALIZED (
  SELECT DISTINCT ON (hit.id) hit.id, hit.tsv FROM lexemes,
  LATERAL (SELECT m.id, m.tsv FROM memories m WHERE {where}
           AND m.tsv @@ plainto_tsquery('simple', lexemes.lexeme) LIMIT {c}) hit),
tf AS (
  SELECT cand.id, u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf, length(cand.tsv) AS dl
  FROM cand, unnest(cand.tsv) u WHERE u.lexeme IN (SELECT lexeme FROM lexemes)),
df AS (SELECT lexeme, count(*) AS df FROM tf GROUP BY lexeme)
SELECT tf.id, sum(ln(1 + (greatest({n_arg}, df.df) - df.df + 0.5) / (df.df + 0.5))
                 * tf.tf * ({k1} + 1) / (tf.tf + {k1} * (1 - {b} + {b} * tf.dl / {avgdl_arg}))) AS score
FROM tf JOIN df USING (lexeme) GROUP BY tf.id ORDER BY score DESC, tf.id LIMIT {lim}"""
    rows = await pool.fetch(sql, *args)
    return [(str(r["id"]), float(r["score"])) for r in rows]


async def trigram(pool: asyncpg.Pool, names: list[str], scope: Scope, limit: int,
                  min_similarity: float = 0.6, per_name: int = 200) -> list[tuple[str, float]]:
    """(id, best word similarity of any name), best first: fuzzy matches (pg_trgm `<%`,
    served by the trigram index) of the names that have NO exact full-text match in the
    scope. An exact name is BM25's job; fuzzy matching a name that half the memories
    contain would cost a similarity computation per row for nothing. At most `per_name`
    rows are examined per name, so a misspelt common name stays cheap too."""
    if not names:
        return []
    args: list = [names, min_similarity, per_name, limit]
    exact = scope.where(args, "e.")
    fuzzy = scope.where(args, "m.")
    sql = f"""
SELECT id, max(sim) AS sim FROM (
  SELECT m.id, word_similarity(n.name, m.text) AS sim
  FROM unnest($1::text[]) AS n(name),
  LATERAL (SELECT m.id, m.text FROM memories m WHERE {fuzzy} AND n.name <% m.text LIMIT $3) m
  WHERE NOT EXISTS (SELECT 1 FROM memories e WHERE {exact}
                    AND e.tsv @@ plainto_tsquery('english', n.name))
) hits WHERE sim >= $2 GROUP BY id ORDER BY sim DESC, id LIMIT $4"""
    async with source_connection(pool, f"pg_trgm.word_similarity_threshold = {float(min_similarity)}") as conn:
        rows = await conn.fetch(sql, *args)
    return [(str(r["id"]), float(r["sim"])) for r in rows]


async def anchor_time(pool: asyncpg.Pool, tsquery: str, scope: Scope) -> datetime | None:
    """When the memory that best matches an anchor phrase ("the meeting") happened."""
    args: list = [tsquery]
    where = scope.where(args)
    row = await pool.fetchrow(
        f"SELECT occurred_at FROM memories WHERE {where} AND tsv @@ to_tsquery('english', $1)"
        " ORDER BY ts_rank_cd(tsv, to_tsquery('english', $1)) DESC, occurred_at DESC LIMIT 1", *args)
    return row["occurred_at"] if row else None


async def hydrate(pool: asyncpg.Pool, ids: list[str], scope: Scope, vector: np.ndarray | None,
                  with_embedding: bool = False) -> dict[str, dict]:
    """The documents of `ids` that pass the scope, by id, each with `similarity` to the
    query vector (and `embedding` when asked, for MMR). One round trip; none for no ids."""
    if not ids:
        return {}
    args: list = [ids]
    where = scope.where(args)
    extra = ""
    if vector is not None:
        args.append(vector)
        extra += f", 1 - (embedding <=> ${len(args)}) AS similarity"
    if with_embedding:
        extra += ", embedding"
    rows = await pool.fetch(f"SELECT {MEMORY_COLUMNS}{extra} FROM memories WHERE id = ANY($1::uuid[]) AND {where}",
                            *args)
    out = {}
    for row in rows:
        doc = memory_document(row)
        doc["similarity"] = float(row["similarity"]) if vector is not None else None
        if with_embedding:
            value = row["embedding"]
            doc["embedding"] = np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=np.float32)
        out[doc["id"]] = doc
    return out


async def get_memory(pool: asyncpg.Pool, memory_id: str, user_id: str) -> dict | None:
    """One memory of the user in any state but deleted (None: absent, deleted or someone else's)."""
    row = await pool.fetchrow(f"SELECT {MEMORY_COLUMNS} FROM memories WHERE id = $1::uuid AND user_id = $2"
                              " AND state <> 'deleted'", memory_id, user_id)
    return memory_document(row) if row else None


def _with_vector(row, now: datetime | None = None) -> dict:
    """A memories row as the API shows it, with its stored vector (a list of floats) and model id."""
    doc = memory_document(row, now)
    value = row["embedding"]
    doc["embedding"] = np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value,
                                  dtype=np.float32).tolist()
    doc["embedding_model"] = row["embedding_model"]
    return doc


async def list_memories(pool: asyncpg.Pool, scope: Scope, sort: str, descending: bool, limit: int,
                        offset: int, with_vectors: bool = False) -> tuple[list[dict], int]:
    """A page of the scope's memories and the total count (with each one's vector and its
    model id when asked: what an export carries)."""
    if sort not in SORTABLE:
        raise ValueError(f"sort must be one of {SORTABLE}")
    args: list = []
    where = scope.where(args)
    direction = "DESC NULLS LAST" if descending else "ASC NULLS FIRST"
    args += [limit, offset]
    columns = MEMORY_COLUMNS + (", embedding, embedding_model" if with_vectors else "")
    rows = await pool.fetch(
        f"SELECT {columns}, count(*) OVER () AS total FROM memories WHERE {where}"
        f" ORDER BY {sort} {direction}, id LIMIT ${len(args) - 1} OFFSET ${len(args)}", *args)
    if rows:
        show = _with_vector if with_vectors else memory_document
        return [show(r, scope.now) for r in rows], int(rows[0]["total"])
    if offset == 0:
        return [], 0
    total = await pool.fetchval(f"SELECT count(*) FROM memories WHERE {where}", *args[:-2])
    return [], int(total)


async def history(pool: asyncpg.Pool, memory_id: str, user_id: str) -> list[dict] | None:
    """Every change of one memory of the user, oldest first (None: no such memory of the user)."""
    rows = await pool.fetch(
        "SELECT event_id, event_type, actor, correlation_id, occurred_at, log_partition, log_offset, old_text,"
        " new_text, old_metadata, new_metadata, reason FROM memory_history WHERE memory_id = $1::uuid"
        " AND user_id = $2 ORDER BY occurred_at, log_partition, log_offset", memory_id, user_id)
    if not rows:
        return None
    changes = []
    for r in rows:
        before = None if r["old_text"] is None and r["old_metadata"] is None else {
            "memory": r["old_text"], "metadata": _json(r["old_metadata"])}
        after = None if r["new_text"] is None and r["new_metadata"] is None else {
            "memory": r["new_text"], "metadata": _json(r["new_metadata"])}
        changes.append({
            "event_id": str(r["event_id"]), "event": r["event_type"], "actor": r["actor"],
            "correlation_id": r["correlation_id"], "at": r["occurred_at"].isoformat(),
            "before": before, "after": after, "reason": r["reason"],
            "log_position": {"partition": r["log_partition"], "offset": r["log_offset"]},
        })
    return changes


# --- identity: shares, namespaces, keys, users --------------------------------------

_UNEXPIRED = "({t}expires_at IS NULL OR {t}expires_at > now())"  # counts and lists without a Scope

_SHARED_COLUMNS = ", ".join(f"memories.{c.strip()}" for c in MEMORY_COLUMNS.split(","))  # memory_shares has user_id too


async def get_shared_memory(pool: asyncpg.Pool, memory_id: str, grantee_user_id: str) -> dict | None:
    """A memory someone shared with `grantee_user_id`, with who shared it (None: not shared with them)."""
    row = await pool.fetchrow(
        f"SELECT {_SHARED_COLUMNS}, s.permission, s.shared_at FROM memories"
        " JOIN memory_shares s ON s.memory_id = memories.id AND s.user_id = memories.user_id"
        " WHERE memories.id = $1::uuid AND s.grantee_user_id = $2 AND memories.state <> 'deleted'",
        memory_id, grantee_user_id)
    if row is None:
        return None
    return {**memory_document(row), "shared": {"by": row["user_id"], "permission": row["permission"],
                                               "at": row["shared_at"].isoformat()}}


async def shared_with(pool: asyncpg.Pool, grantee_user_id: str, limit: int, offset: int) -> tuple[list[dict], int]:
    """Active memories other users shared with `grantee_user_id`, newest share first."""
    rows = await pool.fetch(
        f"SELECT {_SHARED_COLUMNS}, s.permission, s.shared_at, count(*) OVER () AS total FROM memories"
        " JOIN memory_shares s ON s.memory_id = memories.id AND s.user_id = memories.user_id"
        " WHERE s.grantee_user_id = $1 AND memories.state = 'active' AND " + _UNEXPIRED.format(t="memories.") +
        " ORDER BY s.shared_at DESC, memories.id LIMIT $2 OFFSET $3", grantee_user_id, limit, offset)
    docs = [{**memory_document(r), "shared": {"by": r["user_id"], "permission": r["permission"],
                                               "at": r["shared_at"].isoformat()}} for r in rows]
    return docs, rows[0]["total"] if rows else 0


async def share_details(pool: asyncpg.Pool, ids: list[str], grantee_user_id: str) -> dict[str, dict]:
    """`shared` ({by, permission, at}) of each of `ids` shared with `grantee_user_id`."""
    rows = await pool.fetch("SELECT memory_id, user_id, permission, shared_at FROM memory_shares"
                            " WHERE grantee_user_id = $1 AND memory_id = ANY($2::uuid[])", grantee_user_id, ids)
    return {str(r["memory_id"]): {"by": r["user_id"], "permission": r["permission"], "at": r["shared_at"].isoformat()}
            for r in rows}


async def shares_of(pool: asyncpg.Pool, memory_id: str, user_id: str) -> list[dict]:
    rows = await pool.fetch("SELECT grantee_user_id, permission, shared_at FROM memory_shares"
                            " WHERE memory_id = $1::uuid AND user_id = $2 ORDER BY shared_at", memory_id, user_id)
    return [{"grantee_user_id": r["grantee_user_id"], "permission": r["permission"],
             "shared_at": r["shared_at"].isoformat()} for r in rows]


async def namespaces(pool: asyncpg.Pool, user_id: str) -> dict:
    """The user's apps and agents with how many active memories each holds."""
    rows = await pool.fetch(
        "SELECT app_id, agent_id, count(*) AS n FROM memories WHERE user_id = $1 AND state = 'active'"
        " AND " + _UNEXPIRED.format(t="") +
        " GROUP BY GROUPING SETS ((app_id), (agent_id))", user_id)
    apps = sorted(({"app_id": r["app_id"], "memories": r["n"]} for r in rows
                   if r["app_id"] is not None and r["agent_id"] is None), key=lambda a: (-a["memories"], a["app_id"]))
    agents = sorted(({"agent_id": r["agent_id"], "memories": r["n"]} for r in rows
                     if r["agent_id"] is not None and r["app_id"] is None),
                    key=lambda a: (-a["memories"], a["agent_id"]))
    total = await pool.fetchval("SELECT count(*) FROM memories WHERE user_id = $1 AND state = 'active' AND "
                                + _UNEXPIRED.format(t=""), user_id)
    return {"user_id": user_id, "memories": total, "apps": apps, "agents": agents}


async def users(pool: asyncpg.Pool, limit: int, offset: int) -> tuple[list[dict], int]:
    rows = await pool.fetch(
        "SELECT u.user_id, u.display_name, u.is_admin, u.registered_at, count(*) OVER () AS total,"
        " (SELECT count(*) FROM api_keys k WHERE k.user_id = u.user_id AND k.revoked_at IS NULL) AS active_keys"
        " FROM users u ORDER BY u.user_id LIMIT $1 OFFSET $2", limit, offset)
    return [{"user_id": r["user_id"], "display_name": r["display_name"], "is_admin": r["is_admin"],
             "registered_at": r["registered_at"].isoformat(), "active_keys": r["active_keys"]} for r in rows], \
        rows[0]["total"] if rows else 0
