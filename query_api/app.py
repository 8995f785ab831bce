"""The query API (FastAPI): reads only, from the read models. Never imports command_api.

Read-your-writes: a `consistency_token` makes a read wait (bounded) until the read models
it uses applied it. Postgres is required (past the bound: 503); the graph source is left
out (named in `degraded`) when Neo4j lags past the bound; the answer cache is bypassed
when Redis lags. Reads that return memories append MemoryAccessed events in the
background (listing does not: browsing is not recall).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import asyncpg
from fastapi import Depends, FastAPI, Path, Query, Response

from adapters.http_api import (ApiError, install_error_handlers, json_answer, install_health, install_http_metrics,
                               install_request_guard, wait_for_token)
from adapters.observability import install_request_context
from adapters.http_auth import Authenticator, acting_user, require_admin
from adapters.json_body import parse_json
from adapters import resilience
from adapters.postgres import CONNECTION_ERRORS
from domain.circuit_breaker import CircuitOpen
from domain.consistency import ConsistencyToken, InvalidConsistencyToken, Notices, NotYetApplied, wait_until_applied
from domain.context_block import build_context
from domain.filters import FilterError, Node, parse
from domain.identifiers import ID_PATTERN, UUID_PATTERN
from domain.identity import Principal
from domain import query_terms
from query_api import pg_reads
from query_api.caches import REDIS_ERRORS, AnswerCache, EmbeddingCache, in_background
from query_api.pg_reads import Scope
from query_api.requests import ContextRequest, ScopedQuery, SearchRequest
from query_api.search import SOURCES, HybridSearch, Query as SearchQuery, SourceFailed, reads_graph, utc_now
from settings import EVENTS_TOPIC

log = logging.getLogger(__name__)

PROJECTION = "postgres"
# The largest body a read takes: a search with a long query and a big filter is a few KiB;
# a filter at its limits (64 conditions, lists of 1,000) stays well under this.
BODY_LIMIT = 1024 * 1024


def user_param() -> Any:
    return Query(default=None, pattern=ID_PATTERN,
                 description="whose memories; default the API key's user (an admin key may name any user)")


def scope_param() -> Any:
    """A fresh Query(...) per parameter: FastAPI would merge parameters sharing one object."""
    return Query(default=None, pattern=ID_PATTERN)


class Recorder:  # the AccessRecorder's port (adapters/access_log.py)
    def record(self, user_id: str, memory_ids: list[str], source: str, query: str | None = None) -> None: ...


@dataclass
class QueryDeps:
    pool: Callable[[], asyncpg.Pool]
    embeddings: EmbeddingCache
    search: HybridSearch
    pg_positions: Callable[[], Awaitable[dict[int, int]]]
    consistency_wait_ms: int
    checks: dict[str, Callable[[], Awaitable[object]]]
    graph_positions: Callable[[], Awaitable[dict[int, int]]] | None = None
    user_graph: Callable[..., Awaitable[dict]] | None = None
    answers: AnswerCache | None = None
    redis_positions: Callable[[], Awaitable[dict[int, int]]] | None = None
    # the sparse index's positions (its last commit): behind a request's token, Postgres full-text answers instead
    sparse_positions: Callable[[], Awaitable[dict[int, int]]] | None = None
    access: Recorder = field(default_factory=Recorder)
    count_tokens: Callable[[str, str], int] | None = None  # (encoding, text) -> tokens
    grace_ms: int = 250  # how long the graph and the cache may lag Postgres on a token before they are left out
    auth: Authenticator = field(default_factory=lambda: Authenticator(None, required=False))
    # partition -> the event log's end (adapters/log_ends.py): a token past it is refused (400)
    log_ends: Callable[[], Awaitable[dict[int, int]]] | None = None
    applied: Notices | None = None  # the Postgres projector's commits, heard: token waits wake on them


def create_app(deps: QueryDeps, lifespan=None) -> FastAPI:
    app = FastAPI(title="recallstack query API", version="0.2.0", lifespan=lifespan)
    auth = deps.auth
    install_error_handlers(app)
    install_health(app, deps.checks)
    install_request_guard(app, {}, BODY_LIMIT)
    install_http_metrics(app, "query")
    install_request_context(app, "query-api")

    async def pg_consistent(token: str | None, postgres_needed: bool = True) -> None:
        """Postgres has applied `token`. Its circuit open: 503 at once, unless the read can do
        without Postgres and waits for no token."""
        try:
            if postgres_needed or token:
                resilience.refuse_if_open(resilience.breaker("postgres"))
            await wait_for_token(token, EVENTS_TOPIC, PROJECTION, deps.pg_positions, deps.consistency_wait_ms,
                                 deps.log_ends, notices=deps.applied)
        except (*CONNECTION_ERRORS, CircuitOpen) as exc:
            raise postgres_down(exc) from exc

    async def soft_consistent(token: str | None, positions, name: str, wait_ms: int | None = None) -> str | None:
        """None when `positions` applied the token within `wait_ms` (default the consistency
        bound; 0: one look), else why not."""
        if not token or positions is None:
            return None
        try:
            await wait_until_applied(token, EVENTS_TOPIC, name, positions,
                                     deps.consistency_wait_ms if wait_ms is None else wait_ms)
        except NotYetApplied as exc:
            return f"not yet consistent: {exc}"
        except InvalidConsistencyToken:
            return None  # the Postgres wait reports it as a 400
        except Exception as exc:  # its store is down: the detail goes to the log, not to the client
            log.warning("read model %s: cannot read its positions", name, exc_info=True)
            return f"unavailable ({type(exc).__name__})"
        return None

    def scope_of(body: ScopedQuery) -> Scope:
        return Scope.of(body.user_id, body.agent_id, body.run_id, body.app_id, parsed_filters(body.filters),
                        body.include_archived)

    async def run_search(body: SearchRequest | ContextRequest, limit: int, response: Response,
                         options: dict) -> dict:
        began = time.perf_counter()
        scope = scope_of(body)
        reference_time = body.reference_time or utc_now()
        embed_began = time.perf_counter()
        embed_task = asyncio.create_task(deps.embeddings.embed(body.query))
        embed_ms: dict[str, Any] = {}

        async def vector():
            result, origin = await embed_task
            embed_ms.setdefault("embed", round((time.perf_counter() - embed_began) * 1000, 2))
            embed_ms.setdefault("origin", origin)
            return result

        vector_task = asyncio.ensure_future(vector())
        # Waited for only by a search that can read the graph (names are looked for only then:
        # ~0.1 ms of regexes).
        graph_read = bool(body.consistency_token) and reads_graph(options.get("sources") or SOURCES,
                                                                  query_terms.names(body.query))
        graph_wait = asyncio.create_task(soft_consistent(
            body.consistency_token if graph_read else None, deps.graph_positions, "neo4j"))
        applied_task: asyncio.Future | None = None
        try:
            query = SearchQuery(body.query, scope, limit, options.get("threshold"), reference_time,
                                tuple(options.get("sources") or SOURCES), options.get("weights") or {},
                                options.get("rrf_k"), options.get("mmr", False), options.get("temporal", "boost"),
                                body.include_shared)
            postgres_optional = deps.search.can_do_without_postgres(query)
            await pg_consistent(body.consistency_token, postgres_needed=not postgres_optional)
            if body.consistency_token and deps.answers is not None:  # valid: the wait checked it
                deps.answers.saw(ConsistencyToken.decode(body.consistency_token).offsets)
            # Postgres answers. The graph gets a short grace beyond it (without it the answer
            # leaves the graph out). The cache and the sparse index get one look, no wait: one
            # that has not applied the token is bypassed (the answer is computed) or stood in
            # for by Postgres full-text, exactly. A Tantivy commit (~40 ms, its fsyncs) would
            # otherwise make every read-your-writes search wait for it.
            graph_problem, cache_problem, sparse_problem = await asyncio.gather(
                _within_grace(graph_wait, deps.grace_ms, "neo4j"),
                soft_consistent(body.consistency_token, deps.redis_positions, "redis", wait_ms=0),
                soft_consistent(body.consistency_token, deps.sparse_positions, "sparse", wait_ms=0))
            cache_state, slot, pg_applied = "off", None, None
            # Not with shared memories: an owner's change moves the owner's offsets, which the
            # grantee's cached answer is not keyed on.
            if (deps.answers is not None and options.get("cache", True) and not options.get("explain")
                    and not body.include_shared):
                if cache_problem:
                    cache_state = "bypassed"
                else:
                    key = AnswerCache.request_key({
                        "q": body.query, "scope": scope.fields, "filters": body.filters, "limit": limit,
                        "archived": body.include_archived, "options": {k: v for k, v in options.items()
                                                                         if k not in ("cache", "explain")},
                        "graph": graph_problem is None,
                        # Relative times depend on 'now': the day is part of the key.
                        "day": reference_time.date().isoformat(),
                    })
                    try:
                        cached, slot = await deps.answers.lookup(scope.user_id, key)
                    except REDIS_ERRORS as exc:
                        cache_state, cached = f"unavailable: {type(exc).__name__}", None
                    else:
                        cache_state = "hit" if cached else "miss"
                    if cached is not None:
                        vector_task.cancel()
                        cached["cache"] = "hit"
                        _server_timing(response, {"cache": round((time.perf_counter() - began) * 1000, 2)}, began)
                        return cached
                    if slot is not None:  # read beside the search, not before it
                        applied_task = asyncio.ensure_future(from_postgres(deps.pg_positions()))
            postgres = resilience.breaker("postgres")
            try:
                outcome = await deps.search.run(query, vector_task, graph_allowed=graph_problem is None,
                                                graph_reason=f"Neo4j {graph_problem}" if graph_problem else None,
                                                sparse_fresh=sparse_problem is None,
                                                postgres_up=postgres.state != "open")
            except SourceFailed as exc:
                raise ApiError(503, "unavailable", f"no search source could answer ({exc})", retry_after=1) from exc
            except CONNECTION_ERRORS as exc:
                raise postgres_down(exc) from exc
            if outcome.postgres_down:  # answered from the other sources and Redis: Postgres still counts as down
                if postgres.state != "open":
                    postgres.record_failure()
            else:
                postgres.record_success()
            if applied_task is not None:  # where the answer cache files it; none: it is not cached
                try:
                    pg_applied = await applied_task
                except ApiError:  # Postgres is down (from_postgres said so): answered all the same
                    pg_applied = None
        finally:
            for task in (vector_task, graph_wait, applied_task):
                if task is not None:
                    task.cancel()
        answer = {"results": outcome.results, "degraded": outcome.degraded, "cache": cache_state}
        timings = {"embed": embed_ms.get("embed", 0.0), **outcome.timings_ms}
        if options.get("explain"):
            answer["explain"] = {**outcome.explain, "embedding_from": embed_ms.get("origin"),
                                 "reference_time": reference_time.isoformat()}
            answer["timings_ms"] = timings
        if slot is not None and not outcome.degraded and pg_applied is not None:
            in_background(deps.answers.store(slot, {k: v for k, v in answer.items() if k != "cache"}, pg_applied))
        _server_timing(response, timings, began)
        return answer

    @app.post("/v1/memories/search", tags=["memories"], summary="Hybrid search (dense + sparse + temporal + graph)")
    async def search(body: SearchRequest, response: Response, principal: Principal = Depends(auth)):
        body = body.model_copy(update={"user_id": acting_user(principal, body.user_id, "read")})
        options = body.model_dump(include={"threshold", "sources", "weights", "rrf_k", "mmr", "temporal", "cache",
                                           "explain"})
        answer = await run_search(body, body.limit, response, options)
        # A grantee's read is not the owner's recall: shared results make no access event.
        deps.access.record(body.user_id, [r["id"] for r in answer["results"] if "shared" not in r], "search",
                           body.query)
        return json_answer(answer, response)

    @app.post("/v1/context", tags=["memories"], summary="A token-budgeted context block for the next prompt")
    async def context(body: ContextRequest, response: Response, principal: Principal = Depends(auth)):
        body = body.model_copy(update={"user_id": acting_user(principal, body.user_id, "read")})
        answer = await run_search(body, body.candidates, response, {})
        count = deps.count_tokens or (lambda _enc, text: len(text.split()))
        ranked = [{**r, "occurred_at": datetime.fromisoformat(r["occurred_at"])} for r in answer["results"]]
        block = build_context(ranked, body.max_tokens, lambda text: count(body.encoding, text))
        by_id = {r["id"]: r for r in answer["results"]}
        included = [by_id[i] for i in block.included]
        deps.access.record(body.user_id, [i for i in block.included if "shared" not in by_id[i]], "context",
                           body.query)
        return json_answer({"context": block.text, "tokens": block.tokens, "max_tokens": body.max_tokens,
                            "encoding": body.encoding, "memories": included, "omitted": block.omitted,
                            "degraded": answer["degraded"]}, response)

    @app.get("/v1/memories", tags=["memories"], summary="List memories with filters, paging and sort")
    async def list_memories(
            principal: Principal = Depends(auth), user_id: str | None = user_param(), agent_id: str | None = scope_param(),
            run_id: str | None = scope_param(), app_id: str | None = scope_param(),
            filters: str | None = Query(default=None, max_length=16_384, description="a filter tree as JSON"),
            page: int = Query(default=1, ge=1, le=100_000), page_size: int = Query(default=100, ge=1, le=1_000),
            sort: Literal["created_at", "updated_at", "occurred_at", "importance"] = "created_at",
            order: Literal["asc", "desc"] = "desc", include_archived: bool = False,
            state: Literal["active", "archived", "forgotten", "any"] | None = Query(
                default=None, description="only memories in this state (any: all but deleted); forgotten ones "
                                          "can be restored with POST /v1/memories/{id}/restore"),
            include_vectors: bool = Query(
                default=False, description="add each memory's stored `embedding` (a list of floats) and "
                                           "`embedding_model` (what `recallstack export --include-vectors` writes); "
                                           "about 8 KB of JSON per memory at 384 dimensions"),
            consistency_token: str | None = Query(default=None, max_length=4_096)):
        user_id = acting_user(principal, user_id, "read")
        parsed = parsed_filters(parse_json(filters, "filters") if filters else None)  # strict: as a body is
        await pg_consistent(consistency_token)
        scope = dataclasses.replace(Scope.of(user_id, agent_id, run_id, app_id, parsed, include_archived), state=state)
        rows, total = await from_postgres(pg_reads.list_memories(deps.pool(), scope, sort, order == "desc", page_size,
                                                                 (page - 1) * page_size, with_vectors=include_vectors))
        return {"results": rows, "page": page, "page_size": page_size, "total": total,
                "has_more": page * page_size < total}

    @app.get("/v1/memories/{memory_id}", tags=["memories"], summary="One memory")
    async def get_memory(principal: Principal = Depends(auth), memory_id: str = Path(pattern=UUID_PATTERN),
                         user_id: str | None = user_param(),
                         consistency_token: str | None = Query(default=None, max_length=4_096)):
        user_id = acting_user(principal, user_id, "read", one_memory=True)
        await pg_consistent(consistency_token)
        doc = await from_postgres(pg_reads.get_memory(deps.pool(), memory_id.lower(), user_id))
        if doc is None:  # someone else's memory may have been shared with this user (read-only)
            doc = await from_postgres(pg_reads.get_shared_memory(deps.pool(), memory_id.lower(), user_id))
            if doc is None:  # absent, deleted or someone else's: the same answer (no existence leak)
                raise ApiError(404, "not_found", f"memory {memory_id} not found", {"field": "memory_id"})
            return doc  # a grantee's read is not the owner's recall: no access event
        deps.access.record(user_id, [doc["id"]], "get")
        return doc

    @app.get("/v1/memories/{memory_id}/history", tags=["memories"], summary="Every change of one memory")
    async def memory_history(principal: Principal = Depends(auth), memory_id: str = Path(pattern=UUID_PATTERN),
                             user_id: str | None = user_param(),
                             consistency_token: str | None = Query(default=None, max_length=4_096)):
        user_id = acting_user(principal, user_id, "read", one_memory=True)
        await pg_consistent(consistency_token)
        changes = await from_postgres(pg_reads.history(deps.pool(), memory_id.lower(), user_id))
        if changes is None:
            raise ApiError(404, "not_found", f"memory {memory_id} not found", {"field": "memory_id"})
        return {"memory_id": memory_id.lower(), "history": changes}

    @app.get("/v1/graph", tags=["graph"], summary="Entities and relations of a user")
    async def graph(principal: Principal = Depends(auth), user_id: str | None = user_param(), limit: int = Query(default=500, ge=1, le=5_000),
                    include_closed: bool = Query(default=False, description="also relations no longer valid"),
                    consistency_token: str | None = Query(default=None, max_length=4_096)):
        user_id = acting_user(principal, user_id, "read")
        if deps.user_graph is None:
            raise ApiError(503, "unavailable", "the graph read model is not configured", retry_after=5)
        try:
            await wait_for_token(consistency_token, EVENTS_TOPIC, "neo4j", deps.graph_positions,
                                 deps.consistency_wait_ms, deps.log_ends)
            return {"user_id": user_id, **await deps.user_graph(user_id, limit=limit, include_closed=include_closed)}
        except ApiError:
            raise
        except Exception as exc:
            log.warning("graph read failed", exc_info=True)
            raise ApiError(503, "unavailable", f"Neo4j is unreachable ({type(exc).__name__})",
                           {"dependency": "neo4j"}, retry_after=2) from exc

    @app.get("/v1/embedder", tags=["ops"], summary="The embedding model of this deployment: id and dimension")
    async def embedder_info(_: Principal = Depends(auth)):
        """What every stored vector is made with (`embedding_model`, `dim`): an import sends an
        export's vectors only when they match, else the command API embeds the texts again."""
        embedder = deps.embeddings.embedder
        try:
            dim = await asyncio.to_thread(lambda: embedder.dim)  # a remote embedder may probe once
        except Exception as exc:
            log.warning("the embedder's dimension", exc_info=True)
            raise ApiError(503, "embedder_unavailable", f"cannot read the embedder's dimension ({type(exc).__name__})",
                           retry_after=5) from exc
        return {"embedding_model": embedder.model_id, "dim": int(dim)}

    @app.get("/v1/stats/cache", tags=["ops"], summary="Hit ratios of this process's caches")
    async def cache_stats(_: Principal = Depends(auth)):
        stats = {"embedding_lru": deps.embeddings.lru_ratio.as_dict(),
                 "embedding_redis": deps.embeddings.redis_ratio.as_dict()}
        if deps.answers is not None:
            stats["answers"] = deps.answers.ratio.as_dict()
        return stats

    @app.get("/v1/me", tags=["keys"], summary="Who this API key is: its user, scopes and prefix")
    async def me(principal: Principal = Depends(auth)):
        return {"user_id": principal.user_id, "scopes": list(principal.scopes), "key_prefix": principal.key_prefix,
                "key_id": principal.key_id, "auth": "on" if principal.key_prefix else "off"}

    @app.get("/v1/shared", tags=["sharing"], summary="Memories other users shared with this user (read-only)")
    async def shared(principal: Principal = Depends(auth), user_id: str | None = user_param(),
                     page: int = Query(default=1, ge=1, le=100_000), page_size: int = Query(default=100, ge=1, le=1_000)):
        user_id = acting_user(principal, user_id, "read")
        rows, total = await from_postgres(pg_reads.shared_with(deps.pool(), user_id, page_size, (page - 1) * page_size))
        return {"results": rows, "page": page, "page_size": page_size, "total": total,
                "has_more": page * page_size < total}

    @app.get("/v1/memories/{memory_id}/shares", tags=["sharing"], summary="Who a memory is shared with")
    async def memory_shares(principal: Principal = Depends(auth), memory_id: str = Path(pattern=UUID_PATTERN),
                            user_id: str | None = user_param()):
        user_id = acting_user(principal, user_id, "read", one_memory=True)
        if await from_postgres(pg_reads.get_memory(deps.pool(), memory_id.lower(), user_id)) is None:
            raise ApiError(404, "not_found", f"memory {memory_id} not found", {"field": "memory_id"})
        return {"memory_id": memory_id.lower(),
                "shares": await from_postgres(pg_reads.shares_of(deps.pool(), memory_id.lower(), user_id))}

    @app.get("/v1/namespaces", tags=["memories"], summary="A user's apps and agents, with their memory counts")
    async def namespaces(principal: Principal = Depends(auth), user_id: str | None = user_param()):
        user_id = acting_user(principal, user_id, "read")
        return await from_postgres(pg_reads.namespaces(deps.pool(), user_id))

    @app.get("/v1/keys", tags=["keys"], summary="API keys (prefixes and scopes; never secrets)")
    async def list_keys(principal: Principal = Depends(auth),
                        user_id: str | None = Query(default=None, pattern=ID_PATTERN,
                                                    description="whose keys; an admin key without it lists all"),
                        include_revoked: bool = False):
        if not (principal.is_admin and user_id is None):
            user_id = acting_user(principal, user_id, "read")
        return {"results": await from_postgres(pg_reads.api_keys(deps.pool(), user_id, include_revoked))}

    @app.get("/v1/users", tags=["users"], summary="Registered users (admin)")
    async def list_users(principal: Principal = Depends(auth), page: int = Query(default=1, ge=1, le=100_000),
                         page_size: int = Query(default=100, ge=1, le=1_000)):
        require_admin(principal)
        rows, total = await from_postgres(pg_reads.users(deps.pool(), page_size, (page - 1) * page_size))
        return {"results": rows, "page": page, "page_size": page_size, "total": total,
                "has_more": page * page_size < total}

    return app


def parsed_filters(raw) -> Node | None:
    """The filter tree of a request; 422 naming the filter's path when it cannot be used."""
    try:
        return parse(raw)
    except FilterError as exc:
        raise ApiError(422, "invalid_request", str(exc), {"field": exc.path}) from exc


def postgres_down(exc: BaseException) -> ApiError:
    pg = resilience.breaker("postgres")
    if not isinstance(exc, CircuitOpen):
        pg.record_failure()
    log.warning("Postgres is unreachable: %s", exc)
    return ApiError(503, "unavailable", f"Postgres is unreachable ({type(exc).__name__})", {"dependency": "postgres"},
                    retry_after=resilience.retry_after(pg))


async def from_postgres(read: Awaitable):
    """The result of a Postgres read; 503 with Retry-After when Postgres is unreachable
    (at once while its circuit breaker is open: no request waits for a dead server)."""
    pg = resilience.breaker("postgres")
    try:
        resilience.refuse_if_open(pg)
    except CircuitOpen as exc:
        read.close()
        raise postgres_down(exc) from exc
    try:
        result = await read
    except CONNECTION_ERRORS as exc:
        raise postgres_down(exc) from exc
    pg.record_success()
    return result


async def _within_grace(wait: asyncio.Task, grace_ms: int, name: str) -> str | None:
    try:
        return await asyncio.wait_for(wait, grace_ms / 1000)
    except asyncio.TimeoutError:
        return f"not yet consistent: read model {name} had not applied the token {grace_ms} ms after Postgres"


def _server_timing(response: Response, timings: dict[str, float], began: float) -> None:
    """Where the time went, for browsers' dev tools and the search benchmark."""
    entries = {**timings, "total": round((time.perf_counter() - began) * 1000, 2)}
    response.headers["Server-Timing"] = ", ".join(f"{name};dur={ms}" for name, ms in entries.items())
