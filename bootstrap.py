"""The one place that wires adapters into the services (the composition root).

uvicorn loads the apps through these factories (`--factory`), the CLI builds the
projectors here; nothing else constructs adapters.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path

from fastapi import FastAPI

from adapters import kafka_security, observability, postgres, resilience
from adapters.embedders import Embedder, build_embedder, build_query_embedder
from adapters.embedders.routed import SizeRoutedEmbedder
from adapters.kafka_log import EventPublisher, ensure_topics
from adapters.log_ends import LogEnds
from domain.retry import RetryPolicy
from settings import (ACCESS_GROUP, ACCESS_TOPIC, EVENTS_PARTITIONS, EVENTS_TOPIC, PROJECTIONS,
                      PROJECTOR_LINGER_MS, Settings, projector_group)

log = logging.getLogger("recallstack")


@cache
def settings() -> Settings:
    """This process's one Settings, read from the environment once; the Kafka clients' TLS and
    SASL installed from it."""
    cfg = Settings.from_env()
    kafka_security.use(cfg.kafka_security)
    return cfg


def embedder(cfg: Settings) -> Embedder:
    if cfg.embedder == "openai":
        return build_embedder("openai", base_url=cfg.embedder_base_url, api_key=cfg.embedder_api_key,
                              model=cfg.embedder_model)
    if cfg.embedder == "minilm":
        options = {"spin": cfg.embedder_spin, "cache_dir": embedder_cache(cfg)}
        if cfg.embedder_threads:
            return build_embedder("minilm", threads=cfg.embedder_threads, **options)
        # Auto: one thread per small request (concurrency across requests), all cores for batches.
        return SizeRoutedEmbedder(build_embedder("minilm", threads=1, **options), build_embedder("minilm", **options))
    return build_embedder(cfg.embedder)


def query_embedder(cfg: Settings) -> Embedder:
    """The query API's: a search's text through the int8 MiniLM graph, one thread per query, when
    RECALLSTACK_EMBEDDER_QUERY_PRECISION is int8 (default) and documents are MiniLM's; documents'
    vectors unchanged (docs/search.md "Query embedding"). Else the documents' embedder."""
    return build_query_embedder(embedder(cfg), cfg.embedder_query_precision, spin=cfg.embedder_spin,
                                cache_dir=embedder_cache(cfg))


def embedder_cache(cfg: Settings) -> Path:
    """Where MiniLM keeps its optimized graphs (built once per machine, not per process)."""
    return cfg.home / "cache" / "embedders"


def authenticator(cfg: Settings, pool):
    """The one authentication of both APIs: keys from the identity read model (through
    `pool`, a callable: pools are made in lifespans), rate limits in Redis (per key, per user,
    failed authentications per client address)."""
    from adapters.client_address import ClientAddress
    from adapters.http_auth import Authenticator
    from adapters.key_directory import KeyDirectory
    from adapters.rate_limit import RateLimiter

    if not cfg.auth:
        return Authenticator(None, None, required=False)
    return Authenticator(KeyDirectory(pool, breaker=resilience.breaker("postgres")),
                         RateLimiter(cfg.redis_url, cfg.rate_limit_per_min, breaker=resilience.breaker("redis"),
                                     per_user_per_minute=cfg.rate_limit_per_user_per_min or None,
                                     auth_failures_per_minute=cfg.auth_failures_per_min),
                         addresses=ClientAddress(cfg.trusted_proxies))


@cache
def keyring():
    """The process's one keyring (sealing and opening events, docs/security.md): its cache
    is what makes sealing cheap, and an erasure here is seen by every user of it."""
    from adapters.key_store import KeyStore, Keyring, master_key_bytes
    from settings import ensure_master_key

    cfg = settings()
    master = cfg.keystore_master_key or ensure_master_key(cfg.home)
    return Keyring(KeyStore(cfg.pg_dsn, master_key_bytes(master)))


def event_publisher(cfg: Settings, **options) -> EventPublisher:
    """Every writer of the log appends through one of these: events sealed per user."""
    return EventPublisher(cfg.kafka_bootstrap, keys=keyring(), **options)


def command_app() -> FastAPI:
    import redis.asyncio as aioredis

    from adapters.key_directory import PgIdentityLookup
    from command_api.app import create_app
    from application.command_handlers import CommandContext
    from command_api.idempotency import IdempotencyStore

    observability.configure("command-api", settings())
    cfg = settings()
    emb = embedder(cfg)
    publisher = event_publisher(cfg)
    redis_client = aioredis.Redis.from_url(cfg.redis_url, socket_timeout=1, socket_connect_timeout=1)
    log_ends = LogEnds(cfg.kafka_bootstrap, EVENTS_TOPIC, EVENTS_PARTITIONS)  # a token past them is a 400
    state: dict = {}

    class LazyLookup:  # the pool is created in the lifespan, after the app object
        async def owner(self, memory_id):
            return await postgres.PgMemoryLookup(state["pool"]).owner(memory_id)

        async def expiry(self, memory_id):
            return await postgres.PgMemoryLookup(state["pool"]).expiry(memory_id)

    @asynccontextmanager
    async def lifespan(_app):
        # min_size=0: the API starts (and adds keep working) while Postgres is down.
        state["pool"] = await postgres.create_pool(cfg.pg_dsn, min_size=0, max_size=5)
        await publisher.start()
        await asyncio.to_thread(emb.embed_one, "warm up")  # load weights before the first request
        yield
        await publisher.stop()
        await log_ends.close()
        await redis_client.aclose()
        await state["pool"].close()

    async def positions() -> dict[int, int]:
        return await postgres.applied_offsets(state["pool"], "postgres", EVENTS_TOPIC)

    context = CommandContext(embedder=emb, publisher=publisher, memories=LazyLookup(), correlation_id="",
                             identity=PgIdentityLookup(lambda: state["pool"]))
    context.keys = keyring()  # erase_user destroys the user's data keys through it
    async def pg_check():
        await state["pool"].fetchval("SELECT 1")

    return create_app(context, IdempotencyStore(redis_client, breaker=resilience.breaker("redis")), positions,
                      cfg.consistency_wait_ms, command_dependencies(publisher.check, pg_check, redis_client.ping),
                      authenticator(cfg, lambda: state["pool"]),
                      infer_default=cfg.extractor_configured, lifespan=lifespan, log_ends=log_ends,
                      core_memory=core_memory_edits(cfg, publisher, redis_client, lambda: state["pool"], positions,
                                                    log_ends))


def core_memory_edits(cfg: Settings, publisher, redis_client, pool, positions, log_ends):
    """Core memory blocks' edits (application/core_memory.py): checked against the Postgres read model
    under a per-block Redis lock, after the block's last edit is applied."""
    from adapters.core_memory_locks import RedisBlockLocks
    from adapters.core_memory_reads import PgCoreBlocks
    from adapters.tokenizer import token_counter
    from application.core_memory import CoreMemoryEdits
    from domain import core_memory
    from domain.consistency import wait_until_applied

    async def applied(token: str) -> None:
        await wait_until_applied(token, EVENTS_TOPIC, "postgres", positions, cfg.consistency_wait_ms,
                                 EVENTS_PARTITIONS, log_ends)

    return CoreMemoryEdits(PgCoreBlocks(pool), RedisBlockLocks(redis_client), publisher, applied,
                           token_counter(core_memory.ENCODING).count)


def query_app() -> FastAPI:
    import redis.asyncio as aioredis
    from neo4j import AsyncGraphDatabase

    from adapters.applied_notices import AppliedNotices
    from adapters.access_log import AccessRecorder
    from adapters.kafka_log import partition_of
    from adapters.neo4j_read_model import Neo4jReadModel
    from adapters.redis_read_model import live_read_model
    from adapters.sparse_index import SparseIndex, SparseUnavailable
    from adapters.tokenizer import token_counter
    from application.freshness import Consistency
    from query_api import cache_reads, pg_reads
    from query_api.app import PROJECTION, create_app
    from query_api.caches import AnswerCache, EmbeddingCache
    from query_api.search import HARD_LIMIT_FACTOR, HybridSearch

    observability.configure("query-api", settings())
    # The query embedding runs in a worker thread (onnxruntime frees the GIL while it runs) but
    # needs the GIL to start and to hand its vector back: at Python's default 5 ms switch
    # interval a busy event loop made a 2 ms embedding take 10.
    sys.setswitchinterval(0.0005)
    cfg = settings()
    emb = query_embedder(cfg)  # int8 for queries, same vector space as the documents
    state: dict = {}
    # Short timeouts: a Redis that does not answer must cost a search milliseconds, not seconds.
    redis_client = aioredis.Redis.from_url(cfg.redis_url, socket_timeout=0.25, socket_connect_timeout=0.25)
    driver = AsyncGraphDatabase.driver(cfg.neo4j_uri, auth=(cfg.neo4j_user, cfg.neo4j_password),
                                       notifications_min_severity="OFF", connection_timeout=1.0,
                                       connection_acquisition_timeout=1.0, max_transaction_retry_time=0)
    graph = Neo4jReadModel(driver, query_timeout_s=HARD_LIMIT_FACTOR * cfg.search_source_timeout_ms / 1000)
    access = AccessRecorder(cfg.kafka_bootstrap, keys=keyring())
    log_ends = LogEnds(cfg.kafka_bootstrap, EVENTS_TOPIC, EVENTS_PARTITIONS)  # a token past them is a 400
    applied = AppliedNotices(cfg.pg_dsn)  # the Postgres projector's commits, heard: token waits wake on them

    @asynccontextmanager
    async def lifespan(_app):
        state["pool"] = await postgres.create_pool(cfg.pg_dsn, min_size=1, max_size=10)
        # Searches have their own pool, its connections set up once (pg_reads.SearchSession): a
        # search holds up to five at once (dense, BM25, trigram, temporal, hydrate).
        state["search_pool"] = await postgres.create_pool(
            cfg.pg_dsn, min_size=4, max_size=40, server_settings=search.session.server_settings(),
            reset=pg_reads.keep_session)
        await asyncio.to_thread(emb.embed_one, "warm up")
        await asyncio.to_thread(token_counter().load)
        # Its own read model with a long query timeout: planning may take longer than a search's.
        warm = asyncio.create_task(_warm_graph(Neo4jReadModel(driver, query_timeout_s=60)))
        access.start()
        await applied.start()
        yield
        warm.cancel()
        await applied.close()
        await access.stop()
        await log_ends.close()
        await driver.close()
        await redis_client.aclose()
        await state["pool"].close()
        await state["search_pool"].close()
        await asyncio.gather(state["deps"].past.close(), state["deps"].searching.reranking.close())  # Kafka, HTTP

    async def positions() -> dict[int, int]:
        return await postgres.applied_offsets(state["pool"], PROJECTION, EVENTS_TOPIC)

    async def redis_positions() -> dict[int, int]:
        return await (await live_read_model(redis_client)).positions(EVENTS_TOPIC)

    async def pg_check():
        await state["pool"].fetchval("SELECT 1")

    graph_source, graph_positions, user_graph = graph_ports(graph, cfg.search_source_timeout_ms)

    async def neo4j_check():
        await driver.verify_connectivity()

    # The sparse index is read in this process, straight from its files (projector-sparse writes them).
    sparse = SparseIndex(cfg.sparse_dir)

    async def sparse_positions():  # takes the last commit first
        return sparse.positions(EVENTS_TOPIC)

    async def sparse_check():
        if not sparse.available():
            raise SparseUnavailable(f"no sparse index under {cfg.sparse_dir}")

    search = HybridSearch(lambda: state["search_pool"], graph_source, search_config(cfg), sparse=sparse,
                          without_postgres=cache_reads.hydrator(lambda: live_read_model(redis_client)))

    async def access_check():  # the access log's broker takes connections (the query API never waits on it)
        await resilience.tcp_check(cfg.kafka_bootstrap)

    consistency = Consistency(EVENTS_TOPIC, positions, cfg.consistency_wait_ms, EVENTS_PARTITIONS, log_ends, applied,
                              graph=graph_positions, redis=redis_positions, sparse=sparse_positions,
                              grace_ms=cfg.search_source_timeout_ms)
    embeddings = EmbeddingCache(emb, redis_client, breaker=resilience.breaker("redis"))
    answers = AnswerCache(redis_client, EVENTS_TOPIC, partition_of, breaker=resilience.breaker("redis"))
    # Only Postgres decides readiness: the graph and the cache degrade an answer, they never stop one.
    checks = query_dependencies(pg_check, neo4j_check, redis_client.ping, access_check, sparse_check)
    state["deps"] = query_deps(lambda: state["pool"], search, embeddings, answers, consistency, access, checks,
                               user_graph, authenticator(cfg, lambda: state["pool"]), reranking(cfg))
    return create_app(state["deps"], lifespan=lifespan)


def reranking(cfg: Settings):
    """The search's rerank stage: an HTTP cross-encoder when RECALLSTACK_RERANK_URL is set, else
    none (`rerank: true` is then refused by the native API; docs/configuration.md, "Reranking")."""
    from application.reranking import Reranking

    if not cfg.rerank_url:
        return Reranking(candidates=cfg.rerank_candidates)
    from adapters.reranker_http import HttpReranker, RerankFailed

    reranker = HttpReranker(cfg.rerank_url, cfg.rerank_style, cfg.rerank_model, cfg.rerank_api_key,
                            timeout_s=cfg.rerank_timeout_ms / 1000, batch=cfg.rerank_batch)
    return Reranking(reranker, cfg.rerank_candidates, failures=(RerankFailed,))


def query_deps(pool, search, embeddings, answers, consistency, access, checks, user_graph, auth, rerank=None):
    """The query API's use cases (application/search.py, reads.py) on their ports."""
    from adapters.tokenizer import token_counter
    from application.freshness import PostgresGuard
    from adapters.core_memory_reads import PgCoreBlocks
    from application.core_memory import CoreMemoryReads
    from domain import core_memory
    from adapters.profile_reads import PgProfileReads
    from application.profiles import Profiles
    from application.reads import Reading
    from application.search import Searching
    from query_api.caches import REDIS_ERRORS, in_background
    from query_api.deps import QueryDeps
    from query_api.memory_reads import PgMemoryReads

    guard = PostgresGuard(resilience.breaker("postgres"), postgres.CONNECTION_ERRORS)
    core = CoreMemoryReads(PgCoreBlocks(pool), lambda token: consistency.postgres_applied(token, guard), guard.read,
                           token_counter(core_memory.ENCODING).count)
    searching = Searching(search, embeddings, consistency, guard, answers, REDIS_ERRORS, in_background, access,
                          count_tokens=lambda encoding, text: token_counter(encoding).count(text),
                          core_blocks=core.context_blocks,
                          **({"reranking": rerank} if rerank is not None else {}))
    reading = Reading(PgMemoryReads(pool), consistency, guard, access)
    deps = QueryDeps(searching, reading, guard, consistency, pool, embeddings, checks, answers, user_graph, auth,
                     profiles=Profiles(PgProfileReads(pool, EVENTS_TOPIC), consistency, guard), core_memory=core)
    deps.past = past_reads(pool, search, embeddings, searching.count_tokens, rerank)
    return deps


def past_reads(pool, search, embeddings, count_tokens, rerank=None):
    """Reads as of a past moment (application/as_of.py): one user's events read back from the log
    (adapters/user_log.py), from where the Postgres history says the user's first event can be,
    rebuilt by the Postgres projection in memory (projectors/past_state.py)."""
    from adapters.kafka_log import partition_of
    from adapters.user_log import UserLog
    from application.as_of import PastReads
    from projectors.past_state import PastState
    from query_api.app import PROJECTION

    async def first_offset(user_id: str, partition: int) -> int | None:
        """The user's earliest event the history holds, or the first position Postgres has not
        applied when it is earlier (the user's later events). An erased user's history is gone:
        their earlier events are shredded anyway. Postgres down: None (from the beginning)."""
        try:
            first = await pool().fetchval("SELECT min(log_offset) FROM memory_history WHERE user_id = $1"
                                          " AND log_partition = $2", user_id, partition)
            applied = (await postgres.applied_offsets(pool(), PROJECTION, EVENTS_TOPIC)).get(partition, -1)
        except postgres.CONNECTION_ERRORS:
            return None
        return applied + 1 if first is None else min(first, applied + 1)

    log = UserLog(settings().kafka_bootstrap, EVENTS_TOPIC, keyring(), first_offset)
    return PastReads(log, PastState, embeddings, EVENTS_TOPIC, partition_of, EVENTS_PARTITIONS, search.config,
                     count_tokens, **({"reranking": rerank} if rerank is not None else {}))


def search_config(cfg: Settings):
    """The search's tuning from the settings (RECALLSTACK_SEARCH_*, docs/configuration.md)."""
    from query_api.search import SearchConfig
    return SearchConfig(rrf_k=cfg.search_rrf_k, source_timeout_ms=cfg.search_source_timeout_ms,
                        ef_search=cfg.search_ef_search, speaker_weight=cfg.search_speaker_weight)


def graph_ports(graph, source_timeout_ms: int):
    """(the search's graph source, the graph's positions, GET /v1/graph's read) through Neo4j's
    breaker: once it failed repeatedly, the graph source is left out at once (named in
    `degraded`) instead of costing each search its connection timeout."""
    from neo4j.exceptions import ServiceUnavailable, SessionExpired

    from query_api.search import HARD_LIMIT_FACTOR

    failures = (ServiceUnavailable, SessionExpired, OSError)  # Neo4j does not answer
    neo4j = resilience.breaker("neo4j")
    budget = HARD_LIMIT_FACTOR * source_timeout_ms / 1000

    async def graph_source(user_id, names, limit, scope, include_archived, valid_at=None):
        return await resilience.call(neo4j, lambda: graph.memories_for_entities(
            user_id, names, hops=2, limit=limit, scope=scope, include_archived=include_archived, valid_at=valid_at),
            timeout_s=budget, failures=failures)

    async def graph_positions():
        return await resilience.call(neo4j, lambda: graph.positions(EVENTS_TOPIC), timeout_s=2.0,
                                     failures=failures, retry=RetryPolicy(attempts=2))

    async def user_graph(user_id, **options):
        return await resilience.call(neo4j, lambda: graph.user_graph(user_id, **options), timeout_s=10.0,
                                     failures=failures, retry=RetryPolicy(attempts=2))

    return graph_source, graph_positions, user_graph


def command_dependencies(kafka_check, pg_check, redis_check) -> list:
    """What the command API's /readyz reports (docs/observability.md, "Degradation modes")."""
    from adapters.resilience import Dependency

    return [
        Dependency("kafka", kafka_check, required=True,
                   impact="writes answer 503 log_unavailable with Retry-After; nothing is appended"),
        Dependency("postgres", pg_check, required=False, breaker=resilience.breaker("postgres"), impact=(
            "adds and scope deletes by API keys checked in the last 5 minutes, for users this process sealed "
            "for, still append; an unknown key or user, and update/delete/share/restore (ownership checks), "
            "answer 503")),
        Dependency("redis", redis_check, required=False, breaker=resilience.breaker("redis"), impact=(
            "requests with Idempotency-Key answer 503 (without one they append); the rate limit fails open")),
    ]


def query_dependencies(pg_check, neo4j_check, redis_check, access_check, sparse_check) -> list:
    """What the query API's /readyz reports: Postgres is required, the rest degrade answers."""
    from adapters.resilience import Dependency

    return [
        Dependency("postgres", pg_check, required=True, breaker=resilience.breaker("postgres"),
                   impact="every read answers 503 with Retry-After"),
        Dependency("neo4j", neo4j_check, required=False, breaker=resilience.breaker("neo4j"), impact=(
            "search and context leave out the graph source (named in `degraded`); /v1/graph answers 503")),
        Dependency("redis", redis_check, required=False, breaker=resilience.breaker("redis"), impact=(
            "no embedding or answer cache (`cache: unavailable`); the rate limit fails open")),
        Dependency("kafka", access_check, required=False, impact=(
            "access events (MemoryAccessed) wait in a bounded buffer; answers are unaffected")),
        Dependency("sparse", sparse_check, required=False, impact=(
            "the sparse source answers from Postgres full-text instead (slower; named in `degraded`)")),
    ]


async def _warm_graph(graph, attempts: int = 60, rounds: int = 15, pause_s: float = 0.02) -> None:
    """Neo4j plans a query the first time it sees its text (~1 s for the graph source's):
    pay that before the first search's budget does. In the background, retried while Neo4j
    is down (a search meanwhile leaves the graph out).

    Then the same query on real seeds, `rounds` times over a sample of entities: on a stack
    just started, Neo4j's JIT and page cache are cold and the first searches naming someone
    took 40-150 ms in the graph (one in ten missing its 250 ms budget); paid here, paced so
    that serving goes first."""
    now = datetime.now(timezone.utc)
    # Neo4j keeps a plan per query text and parameter types: with and without a time window
    # (a question saying "in June" or "4 years ago" has one) are planned apart.
    windows = (None, (now - timedelta(days=365), now))
    for attempt in range(attempts):
        try:
            for valid_at in windows:
                await asyncio.wait_for(graph.memories_for_entities("recallstack-warm-up", ["warm up"], limit=1,
                                                                   valid_at=valid_at), 30)
            seeds = await graph.sample_entities()
            break
        except Exception as exc:
            if attempt == 0:
                log.warning("graph source not warmed up yet (%s); retrying in the background", exc)
            await asyncio.sleep(5)
    else:
        return
    started, first = time.perf_counter(), None
    try:
        for round_ in range(rounds if seeds else 0):
            for user_id, name in seeds:
                t = time.perf_counter()
                await graph.memories_for_entities(user_id, [name], limit=10, valid_at=windows[round_ % 2])
                first = first if first is not None else (time.perf_counter() - t) * 1000
                await asyncio.sleep(pause_s)
    except Exception as exc:  # Neo4j went away: searches degrade as they would have anyway
        log.warning("graph warm-up on real seeds stopped: %s", exc)
        return
    if seeds:
        last = (time.perf_counter() - t) * 1000
        log.info("graph source warmed up on %d seeds x %d rounds in %.1f s (first %.1f ms, last %.1f ms)",
                 len(seeds), rounds, time.perf_counter() - started, first, last)


def web_edge_app() -> FastAPI:
    """The web edge behind the reverse proxy (gateway/app.py): /mcp, /readyz, the web UI."""
    from gateway.app import SERVICE, create_app

    cfg = settings()
    observability.configure(SERVICE, cfg)
    # /mcp: the MCP server's tools call the REST API at the base URL (the proxy), like any client.
    return create_app(cfg.command_api_url, cfg.query_api_url, mcp_base_url=cfg.gateway_url, bind_host=cfg.host,
                      projector_metrics=projector_metrics_urls(cfg), kafka_bootstrap=cfg.kafka_bootstrap,
                      **({"ui_dist": cfg.ui_dist} if cfg.ui_dist else {}))


def projector_metrics_urls(cfg: Settings) -> dict[str, str]:
    """Each projector's /metrics base URL, for the web UI's System page: the local stack's
    ports, or RECALLSTACK_PROJECTOR_METRICS_URLS ("postgres=http://projector-postgres:9101,...")
    where the projectors run elsewhere (compose)."""
    from settings import PROJECTOR_METRICS_PORTS

    if cfg.projector_metrics_urls:
        return dict(cfg.projector_metrics_urls)
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host
    return {name: f"http://{host}:{port}" for name, port in PROJECTOR_METRICS_PORTS.items()}


# The names `replay --projection` takes too.
ALIASES = {"pg": "postgres", "cache": "redis", "graph": "neo4j", "bm25": "sparse", "index": "sparse"}


def projection_name(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in PROJECTIONS:
        raise ValueError(f"unknown projection {name!r}; available: {', '.join(PROJECTIONS)} "
                         f"(or {', '.join(ALIASES)})")
    return name


@asynccontextmanager
async def read_model(name: str):
    """The read model called `name` (its versions, projectors/versions.py), connected and
    with its live version's schema in place."""
    cfg = settings()
    name = projection_name(name)
    if name == "postgres":
        from projectors.pg_versions import PgVersions

        dim = embedder(cfg).dim
        await postgres.migrate(cfg.pg_dsn, dim)
        pool = await postgres.create_pool(cfg.pg_dsn, min_size=1, max_size=4)
        try:
            yield PgVersions(pool, cfg.pg_dsn, dim)
        finally:
            await pool.close()
    elif name == "redis":
        import redis.asyncio as aioredis

        from projectors.redis_versions import RedisVersions

        # A generous socket timeout: a big batch is one script, and a timeout counts as an outage.
        client = aioredis.Redis.from_url(cfg.redis_url, socket_timeout=10, socket_connect_timeout=2)
        try:
            yield RedisVersions(client)
        finally:
            await client.aclose()
    elif name == "sparse":
        from projectors.sparse_versions import SparseVersions

        versions = SparseVersions(cfg.sparse_dir)
        await versions.live_version()  # version 1, empty, when there is none
        yield versions
    else:
        from neo4j import AsyncGraphDatabase

        from projectors.neo4j_versions import Neo4jVersions

        driver = AsyncGraphDatabase.driver(cfg.neo4j_uri, auth=(cfg.neo4j_user, cfg.neo4j_password),
                                           notifications_min_severity="OFF")
        try:
            versions = Neo4jVersions(driver)
            await versions.create_version(await versions.live_version())
            yield versions
        finally:
            await driver.close()


@asynccontextmanager
async def projection(name: str):
    """A projection that writes the live version of read model `name`."""
    async with read_model(name) as versions:
        yield versions.projection()


async def run_projector(name: str, ready=lambda: None) -> None:
    """Run one projector until cancelled (SIGTERM/SIGINT). The Postgres projector also
    follows the access topic (access counts for decay), in its own consumer group."""
    from projectors.runner import ProjectorRunner

    cfg = settings()
    await ensure_topics(cfg.kafka_bootstrap)
    async with read_model(name) as versions:
        runners = [ProjectorRunner(versions.projection(), cfg.kafka_bootstrap, keys=keyring(),
                                   linger_ms=PROJECTOR_LINGER_MS[projection_name(name)])]
        if projection_name(name) == "postgres":
            runners.append(ProjectorRunner(versions.projection(), cfg.kafka_bootstrap, topic=ACCESS_TOPIC,
                                           group_id=ACCESS_GROUP, keys=keyring()))
        ready()
        await asyncio.gather(*(r.run() for r in runners))


# --- memory intelligence (issue 6): extraction, consolidation and forgetting workers -------


def intelligence(cfg: Settings):
    """(what the workers use, the offline fallback): the LLM implementations when
    RECALLSTACK_LLM_BASE_URL is set, else the offline ones for both."""
    from domain.consolidation import OfflineSummarizer
    from domain.extraction import OfflineExtractor
    from domain.intelligence import Intelligence, ReconciliationPolicy
    from domain.reconciliation import OfflineReconciler

    policy = ReconciliationPolicy(cfg.reconcile_duplicate_at, cfg.reconcile_related_at)
    offline = Intelligence(OfflineExtractor(), OfflineReconciler(policy), OfflineSummarizer(), {"mode": "offline"})
    if not cfg.llm_base_url:
        return offline, offline
    from adapters.llm import LlmClient
    from consolidation.llm import LlmExtractor, LlmReconciler, LlmSummarizer
    from domain.circuit_breaker import CircuitBreaker

    client = LlmClient(cfg.llm_base_url, cfg.llm_model, cfg.llm_api_key, timeout_s=cfg.llm_timeout_ms / 1000,
                       max_retries=cfg.llm_max_retries, breaker=CircuitBreaker("llm"))
    llm = Intelligence(LlmExtractor(client), LlmReconciler(client), LlmSummarizer(client),
                       {"mode": "llm", "model": cfg.llm_model, "base_url": cfg.llm_base_url})
    return llm, offline


@asynccontextmanager
async def extraction_worker(dry_run: bool = False):
    from consolidation.extraction import ExtractionWorker
    from domain.intelligence import ReconciliationPolicy

    cfg = settings()
    await ensure_topics(cfg.kafka_bootstrap)
    pool = await postgres.create_pool(cfg.pg_dsn, min_size=1, max_size=4)
    brain, offline = intelligence(cfg)
    try:
        yield ExtractionWorker(brain, offline, embedder(cfg), pool, cfg.kafka_bootstrap,
                               policy=ReconciliationPolicy(cfg.reconcile_duplicate_at, cfg.reconcile_related_at),
                               dry_run=dry_run, instance=cfg.worker_instance,
                               keys=keyring())
    finally:
        await pool.close()


async def open_lifecycle(kind: str):
    """A Lifecycle with its own pool, publisher and progress reader; returns (it, close)."""
    from adapters.kafka_log import GroupProgress
    from adapters.tokenizer import token_counter
    from consolidation.lifecycle import Lifecycle
    from consolidation.policies import LifecycleConfig

    cfg = settings()
    # first: a bad config fails before anything is opened
    config = LifecycleConfig.load(cfg.home, cfg.lifecycle_config)
    await ensure_topics(cfg.kafka_bootstrap)
    pool = await postgres.create_pool(cfg.pg_dsn, min_size=1, max_size=4)
    # revive_erased=False: a summary of memories read before an erasure is dropped, not sealed anew.
    publisher = event_publisher(cfg, timeout_s=10.0, revive_erased=False, transactional_id=(
        f"recallstack-worker-{kind}-{cfg.worker_instance}"))
    projected = GroupProgress(cfg.kafka_bootstrap, projector_group("postgres"))
    await projected.start()
    brain, offline = intelligence(cfg)
    counter = token_counter()
    lifecycle = Lifecycle(pool, publisher, projected, embedder(cfg), brain.summarizer, offline.summarizer, config,
                          counter.count, profiles=profile_refresher(pool, brain) if kind == "consolidate" else None)

    async def close():
        await publisher.stop()
        await projected.close()
        await pool.close()

    return lifecycle, close


def profile_refresher(pool, brain):
    """User profiles (consolidation/profiles.py): the LLM builder on the workers' LLM client (one
    circuit breaker) when one is configured, the offline builder otherwise and as its fallback."""
    from adapters.profile_reads import PgProfileReads
    from consolidation.profiles import LlmProfileBuilder, OfflineProfileBuilder, ProfileRefresher

    client = getattr(brain.summarizer, "client", None)  # the LLM summarizer's; the offline one has none
    offline = OfflineProfileBuilder()
    return ProfileRefresher(PgProfileReads(lambda: pool, EVENTS_TOPIC),
                            LlmProfileBuilder(client) if client is not None else offline, offline)


# --- erasure (issue 8): crypto-shredding, docs/security.md -------------------------------


async def erase_user(user_id: str, actor: str, reason: str | None = None):
    """Erase a user from an operator's process (the CLI): keys destroyed, then UserErased
    appended; returns (the event, its consistency token)."""
    import os

    from application.command_handlers import CommandContext
    from application.command_handlers import erase_user as erase
    from domain.commands import EraseUser
    from domain.events import new_id

    cfg = settings()
    publisher = event_publisher(cfg, timeout_s=10.0, transactional_id=f"recallstack-erase-{os.getpid()}")
    ctx = CommandContext(embedder=None, publisher=publisher, memories=None, correlation_id=new_id(), keys=keyring())
    try:
        return await erase(EraseUser(user_id=user_id, actor=actor, reason=reason), ctx)
    finally:
        await publisher.stop()
        await keyring().store.close()


# --- the operator's key administration (cli/keys.py, application/key_admin.py) -------------


@asynccontextmanager
async def key_admin(cfg: Settings, writes: bool = True):
    """The ports of `recallstack keys` and of the local admin key: the identity read model and,
    when `writes`, the log through a publisher that seals like every writer's (identity events
    are sealed with the user's key too). Lists open no Kafka client and make no master key."""
    from adapters.key_directory import PgIdentityLookup, PgKeyList
    from application.key_admin import KeyAdmin

    pool = await postgres.create_pool(cfg.pg_dsn, min_size=1, max_size=2 if writes else 1)
    admin = KeyAdmin(PgKeyList(lambda: pool), lambda: postgres.applied_offsets(pool, "postgres", EVENTS_TOPIC),
                     EVENTS_TOPIC)
    try:
        if not writes:
            yield admin
            return
        admin.publisher, admin.identity = event_publisher(cfg), PgIdentityLookup(lambda: pool)
        await admin.publisher.start()
        try:
            yield admin
        finally:
            await admin.publisher.stop()
            await keyring().store.close()
    finally:
        await pool.close()
