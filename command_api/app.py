"""The command API (FastAPI): writes only. Returns 202 with a consistency token."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Header

from adapters.embedders import Embedder
from adapters.embedders.base import EmbedderUnavailable
from adapters.http_api import ApiError, install_error_handlers, install_health
from adapters.kafka_log import LogUnavailable
from command_api import handlers
from command_api.requests import AddMemoryRequest
from domain.commands import AddMemory

MAX_METADATA_BYTES = 16_384


def to_commands(body: AddMemoryRequest, actor: str) -> list[AddMemory]:
    size = len(json.dumps(body.metadata))
    if size > MAX_METADATA_BYTES:
        raise ApiError(413, "too_large", f"metadata: {size} bytes of JSON, at most {MAX_METADATA_BYTES}")
    return [
        AddMemory(
            user_id=body.user_id, text=text, actor=actor, agent_id=body.agent_id, run_id=body.run_id,
            app_id=body.app_id, metadata={**body.metadata, **extra}, categories=tuple(body.categories),
            importance=body.importance, happened_at=body.occurred_at,
        )
        for text, extra in body.texts()
    ]


def create_app(embedder: Embedder, publisher: handlers.Publisher,
               checks: dict[str, Callable[[], Awaitable[object]]],
               lifespan=None) -> FastAPI:
    app = FastAPI(title="recallstack command API", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    install_health(app, checks)

    @app.post("/v1/memories", status_code=202, tags=["memories"])
    async def add_memory(body: AddMemoryRequest, x_request_id: str | None = Header(default=None)):
        commands = to_commands(body, actor=f"user:{body.user_id}")
        try:
            events, token = await handlers.add_memories(commands, embedder, publisher, correlation_id=x_request_id)
        except EmbedderUnavailable as exc:
            raise ApiError(503, "embedder_unavailable", str(exc), retry_after=5) from exc
        except LogUnavailable as exc:
            raise ApiError(503, "log_unavailable", f"{exc}; the write was not acknowledged, retry it", retry_after=2) from exc
        return {
            "results": [{"id": e.memory_id, "memory": e.text, "event": "ADD", "status": "processing"} for e in events],
            "consistency_token": token.encode(),
        }

    return app
