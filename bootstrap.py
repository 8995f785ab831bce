"""The one place that wires adapters into the services (the composition root).

uvicorn loads the apps through these factories (`--factory`), the CLI builds the
projectors here; nothing else constructs adapters.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from functools import cache

from fastapi import FastAPI

from adapters import postgres
from adapters.embedders import Embedder, build_embedder
from adapters.kafka_log import EventPublisher, ensure_topics
from settings import EVENTS_TOPIC, Settings

log = logging.getLogger("recallstack")


@cache
def settings() -> Settings:
    return Settings.from_env()


def embedder(cfg: Settings) -> Embedder:
    if cfg.embedder == "openai":
        return build_embedder("openai", base_url=cfg.embedder_base_url, api_key=cfg.embedder_api_key,
                              model=cfg.embedder_model)
    return build_embedder(cfg.embedder)


def command_app() -> FastAPI:
    from command_api.app import create_app

    cfg = settings()
    emb = embedder(cfg)
    publisher = EventPublisher(cfg.kafka_bootstrap)

    @asynccontextmanager
    async def lifespan(_app):
        await ensure_topics(cfg.kafka_bootstrap)
        await publisher.start()
        await asyncio.to_thread(emb.embed_one, "warm up")  # load weights before the first request
        yield
        await publisher.stop()

    async def kafka_check():
        await publisher.check()

    return create_app(emb, publisher, {"kafka": kafka_check}, lifespan=lifespan)


def query_app() -> FastAPI:
    from query_api.app import PROJECTION, create_app

    cfg = settings()
    emb = embedder(cfg)
    state: dict = {}

    @asynccontextmanager
    async def lifespan(_app):
        state["pool"] = await postgres.create_pool(cfg.pg_dsn, min_size=2, max_size=20)
        await asyncio.to_thread(emb.embed_one, "warm up")
        yield
        await state["pool"].close()

    async def positions() -> dict[int, int]:
        return await postgres.applied_offsets(state["pool"], PROJECTION, EVENTS_TOPIC)

    async def pg_check():
        await state["pool"].fetchval("SELECT 1")

    return create_app(emb, lambda: state["pool"], positions, cfg.consistency_wait_ms,
                      {"postgres": pg_check}, lifespan=lifespan)


def gateway_app() -> FastAPI:
    from gateway.app import create_app

    cfg = settings()
    return create_app(cfg.command_api_url, cfg.query_api_url)


async def run_projector(name: str, ready=lambda: None) -> None:
    """Run one projector until cancelled (SIGTERM/SIGINT)."""
    from projectors.pg_projector import PgProjector
    from projectors.runner import ProjectorRunner

    cfg = settings()
    if name != "postgres":
        raise ValueError(f"unknown projector {name!r}; available: postgres")
    await ensure_topics(cfg.kafka_bootstrap)
    await postgres.migrate(cfg.pg_dsn, embedder(cfg).dim)
    pool = await postgres.create_pool(cfg.pg_dsn, min_size=1, max_size=4)
    runner = ProjectorRunner(PgProjector(pool), cfg.kafka_bootstrap)
    ready()
    try:
        await runner.run()
    finally:
        await pool.close()
