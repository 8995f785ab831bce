"""Reads as of a past moment (`as_of` on search, list, get and context): the state the read
models had then, rebuilt from the log. No HTTP here.

The live reads answer from read models that hold only the present. The log holds every change,
so a past moment (domain/as_of.py: a time or a consistency token) is answered by reading the
user's events up to it (the `log` port: adapters/user_log.py) into a fresh in-memory read model
(`new_state`: projectors/past_state.py, the Postgres projection over its in-memory double), then
listing, getting or ranking its rows as the live reads do (domain/past_ranking.py: dense, sparse
and temporal fused by the same RRF; the graph is not rebuilt and the answer says so).

- Cost: reading the user's partition from the user's first event to the moment (docs/api.md has
  the measured figures); a small LRU keeps rebuilt states by (user, moment, destroyed keys), and a
  later moment of a user goes on from the latest cached earlier one, reading only what lies between.
- Erasure: the key store is asked for the user's destroyed keys on every read; their events are
  skipped, so an erased user has no past either, and a state cached before the erasure is never
  served after it (the destroyed keys are part of the cache key).
- A consistency token given beside `as_of` is checked (a token that cannot exist is refused)
  but waited for by nobody: the log holds every write that returned a token.
- Expiry is judged at the moment; access is not recorded (looking at the past is no recall).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from application.memory_document import memory_document
from application.reads import ListMemories, MemoryNotFound
from application.reranking import Reranking
from application.search import Embeddings, Found, Outcome, Search
from domain import as_of, past_ranking
from domain.as_of import InvalidAsOf, Moment
from domain.consistency import ConsistencyToken
from domain.context_block import build_context
from domain.events import Event
from domain.expiry import is_expired
from domain.filter_match import matches

SETTLED = timedelta(seconds=10)  # a time this far back: no write in flight can still land before it
LEFT_OUT = {"graph": "the graph is not rebuilt as of a past moment"}
# The live context puts the user's core memory blocks first; a past context has memories only.
CORE_LEFT_OUT = "core memory blocks are not rebuilt as of a past moment: the block holds memories only"


class PastLog(Protocol):
    """One user's events from the log (adapters/user_log.UserLog)."""

    async def destroyed_versions(self, user_id: str) -> frozenset[int]: ...

    async def read(self, user_id: str, moment: Moment, apply: Callable[[int, int, Event], Awaitable[None]],
                   destroyed: frozenset[int] = frozenset(), resume: int | None = None) -> Any:
        """Hands the events to `apply` in log order, from `resume` when given; returns what it went
        through (events, last_offset, next_offset, scanned, shredded, start, seconds)."""

    async def close(self) -> None: ...


class Rebuilding(Protocol):
    """A read model being rebuilt in memory (projectors/past_state.PastState), from nothing or from
    an earlier state's rows."""
    memories: dict[str, dict]

    async def apply(self, partition: int, offset: int, event: Event) -> None: ...


@dataclass
class PastState:
    memories: dict[str, dict]  # id -> row, as the Postgres read model held it
    at: datetime  # the moment in time (a token's: when its last event happened); expiry is judged there
    about: dict  # what the answer says of it (`as_of` in every answer)
    _vectors: past_ranking.Vectors | None = None
    moment: Moment | None = None
    resume: int | None = None  # where a later moment's read goes on from (the first record not applied)

    def vectors(self) -> past_ranking.Vectors:
        """The vectors of the memories a search may find (not deleted), stacked once per state."""
        if self._vectors is None:
            self._vectors = past_ranking.Vectors.of([r for r in self.memories.values() if r["state"] != "deleted"])
        return self._vectors


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class PastReads:
    log: PastLog
    new_state: Callable[..., Rebuilding]  # (memories to go on from, or None)
    embeddings: Embeddings
    topic: str
    partition_of: Callable[[str], int]
    partitions: int
    tuning: Any = field(default_factory=past_ranking.Tuning)  # the live engine's SearchConfig
    count_tokens: Callable[[str, str], int] | None = None
    reranking: Reranking = field(default_factory=Reranking)
    cached_rows: int = 50_000  # memories held by the cached states together (~2 KB each)
    clock: Callable[[], datetime] = utc_now
    _cache: OrderedDict = field(default_factory=OrderedDict)

    async def close(self) -> None:
        """Stop reading the log (the query API's shutdown)."""
        await self.log.close()

    async def state(self, user_id: str, raw: str, consistency_token: str | None = None) -> PastState:
        """The user's memories at the moment `raw` names (InvalidAsOf, InvalidConsistencyToken)."""
        if consistency_token:
            ConsistencyToken.checked(consistency_token, self.topic, self.partitions)
        now = self.clock()
        moment = as_of.parse(raw, self.topic, self.partition_of(user_id), self.partitions, now)
        destroyed = await self.log.destroyed_versions(user_id)
        key = (user_id, moment.key(), destroyed)
        if key in self._cache:
            self._cache.move_to_end(key)
            state = self._cache[key]
            return PastState(state.memories, state.at, {**state.about, "cached": True}, state.vectors(), state.moment,
                             state.resume)
        began = time.perf_counter()
        base = self._earlier(key, moment)
        rebuilding, last = self.new_state({k: dict(r) for k, r in base.memories.items()} if base else None), [None]

        async def apply(partition: int, offset: int, event: Event) -> None:
            await rebuilding.apply(partition, offset, event)
            last[0] = event

        read = await self.log.read(user_id, moment, apply, destroyed, base.resume if base else None)
        at = moment.time or (last[0].occurred_at if last[0] is not None else
                             base.at if base is not None and base.about["events"] else now)
        position = (f"{self.topic}/{moment.partition}:{read.last_offset}" if read.last_offset is not None
                    else base.about["position"] if base is not None else None)
        about = {"requested": raw, "at": at.isoformat(), "events": read.events + (base.about["events"] if base else 0),
                 "scanned": read.scanned, "position": position, "erased_events": read.shredded,
                 "rebuilt_ms": round((time.perf_counter() - began) * 1000, 2), "cached": False,
                 "extended_from": base.about["position"] if base is not None else None}
        state = PastState(rebuilding.memories, at, about, moment=moment, resume=read.next_offset)
        if moment.offset is not None or moment.time <= now - SETTLED:
            self._remember(key, state)
        return state

    def _earlier(self, key: tuple, moment: Moment) -> PastState | None:
        """The latest cached state of the same user (and destroyed keys) at an earlier moment of the
        same kind: a later one goes on from it, reading only the events in between."""
        best = None
        for (user_id, _moment, destroyed), state in self._cache.items():
            earlier = state.moment
            if (user_id, destroyed) != (key[0], key[2]) or earlier is None or earlier.partition != moment.partition:
                continue
            if moment.offset is not None and earlier.offset is not None and earlier.offset <= moment.offset or \
                    moment.time is not None and earlier.time is not None and earlier.time <= moment.time:
                if best is None or (earlier.offset or 0, earlier.time or moment.time) > \
                        (best.moment.offset or 0, best.moment.time or moment.time):
                    best = state
        return best

    def _remember(self, key: tuple, state: PastState) -> None:
        self._cache[key] = state
        while self._cache and sum(len(s.memories) for s in self._cache.values()) > self.cached_rows:
            self._cache.popitem(last=False)

    async def search(self, search: Search, raw: str, reference_given: bool = True) -> Found:
        """The ranked memories of the past state (no access recorded)."""
        found, _state = await self._found(search, raw, reference_given)
        return found

    async def context(self, search: Search, raw: str, max_tokens: int, encoding: str,
                      reference_given: bool = True) -> tuple[dict, Found]:
        found, _state = await self._found(search, raw, reference_given)
        results = found.answer["results"]
        count = self.count_tokens or (lambda _enc, text: len(text.split()))
        ranked = [{**r, "occurred_at": datetime.fromisoformat(r["occurred_at"])} for r in results]
        block = build_context(ranked, max_tokens, lambda text: count(encoding, text))
        by_id = {r["id"]: r for r in results}
        return {"context": block.text, "tokens": block.tokens, "max_tokens": max_tokens, "encoding": encoding,
                "memories": [by_id[i] for i in block.included], "omitted": block.omitted,
                "degraded": found.answer["degraded"],
                "as_of": {**found.answer["as_of"], "core_left_out": CORE_LEFT_OUT}}, found

    async def _found(self, search: Search, raw: str, reference_given: bool) -> tuple[Found, PastState]:
        began = time.perf_counter()
        q, options = search.query, search.options
        if q.include_shared:
            raise InvalidAsOf("include_shared cannot be combined with as_of: other users' memories are not "
                              "rebuilt from this user's log", field="include_shared")
        rerank = self.reranking.wanted(options, search.rerank_optional)
        vector, origin = await self.embeddings.embed(q.text)
        embedded = time.perf_counter()
        state = await self.state(q.scope.user_id, raw, search.consistency_token)
        rebuilt = time.perf_counter()
        rows = visible(state, q.scope)
        ask = past_ranking.Ask(q.text, vector, self.reranking.depth(q.limit) if rerank else q.limit,
                               q.reference_time if reference_given else state.at,
                               tuple(s for s in q.sources if s in past_ranking.PAST_SOURCES), q.weights, q.rrf_k,
                               q.threshold, q.mmr, q.temporal_mode)
        hits, explain = past_ranking.ranked(ask, rows, self._tuning(), state.vectors())
        results = [{**document(h.row, state.at), "similarity": h.similarity, "score": h.score, "ranks": dict(h.ranks)}
                   for h in hits]
        timings = {"embed": _ms(began, embedded), "rebuild": _ms(embedded, rebuilt), "rank": _ms(rebuilt)}
        outcome = Outcome(results, [], timings, explain, None)
        if rerank:
            outcome = await self.reranking.applied(q.text, outcome, q.limit)
        about = {**state.about, "sources_left_out": {s: r for s, r in LEFT_OUT.items() if s in q.sources}}
        answer = {"results": outcome.results, "degraded": outcome.degraded, "cache": "off", "as_of": about}
        if options.get("explain"):
            answer["explain"] = {**outcome.explain, "embedding_from": origin,
                                 "reference_time": ask.reference_time.isoformat()}
            answer["timings_ms"] = outcome.timings_ms
        return Found(answer, {**outcome.timings_ms, "total": _ms(began)}), state

    async def list_memories(self, query: ListMemories, raw: str) -> dict:
        state = await self.state(query.scope.user_id, raw, query.consistency_token)
        rows = visible(state, query.scope)
        present = [r for r in rows if r[query.sort] is not None]
        present.sort(key=lambda r: (r[query.sort], r["id"]), reverse=query.descending)
        absent = sorted((r for r in rows if r[query.sort] is None), key=lambda r: r["id"])
        ordered = present + absent if query.descending else absent + present  # NULLS LAST / FIRST, as the live list
        start = (query.page - 1) * query.page_size
        page = ordered[start:start + query.page_size]
        return {"results": [document(r, state.at, query.with_vectors) for r in page], "page": query.page,
                "page_size": query.page_size, "total": len(rows), "has_more": query.page * query.page_size < len(rows),
                "as_of": state.about}

    async def get_memory(self, memory_id: str, user_id: str, raw: str, consistency_token: str | None = None) -> dict:
        """The user's memory as it was (any state but deleted; an expired one with `expired: true`, as the
        live get answers it); MemoryNotFound, as the live get."""
        state = await self.state(user_id, raw, consistency_token)
        row = state.memories.get(memory_id.lower())
        if row is None or row["user_id"] != user_id or row["state"] == "deleted":
            raise MemoryNotFound(memory_id)
        return {**document(row, state.at), "as_of": state.about}

    def _tuning(self) -> past_ranking.Tuning:
        t = self.tuning
        return past_ranking.Tuning(t.rrf_k, dict(t.weights), t.importance_weight, t.recency_weight,
                                   t.recency_half_life_days, t.mmr_diversity)


def visible(state: PastState, scope: Any) -> list[dict]:
    """The rows a live read of `scope` (query_api/pg_reads.Scope) would see, at the state's moment."""
    if scope.state == "any":
        states = ("active", "archived", "forgotten")
    elif scope.state is not None:
        states = (scope.state,)
    else:
        states = ("active", "archived") if scope.include_archived else ("active",)
    return [r for r in state.memories.values()
            if r["user_id"] == scope.user_id and r["state"] in states
            and (getattr(scope, "include_expired", False) or not is_expired(r["expires_at"], state.at))
            and all(r.get(name) == value for name, value in scope.fields.items()) and matches(scope.filters, r)]


def document(row: dict, at: datetime, with_vector: bool = False) -> dict:
    """A past row as the API shows a memory, expiry judged at the moment; with its vector on request."""
    doc = memory_document(row, at)
    if with_vector:
        doc["embedding"] = [float(x) for x in row["embedding"]]
        doc["embedding_model"] = row["embedding_model"]
    return doc


def _ms(began: float, until: float | None = None) -> float:
    return round(((until if until is not None else time.perf_counter()) - began) * 1000, 2)
