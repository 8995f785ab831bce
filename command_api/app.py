"""The command API (FastAPI): writes only. Every write answers 202 with a consistency token
once its events are durably in the log (acks=all); a refused write appends nothing.

Every request carries an API key (adapters/http_auth.py); the key's principal decides
whose memories a request may change. A `user_id` in the body (add) or the query string
(update, delete, restore, share) defaults to the key's user and must be it unless the key
is an admin key; update and delete answer 404 for a memory that is not that user's.
Ownership is checked against the Postgres read model; to change a memory right after
adding it, pass the add's token as `X-Consistency-Token`.

Keys and users (issue 8): POST /v1/keys issues a key (the secret is in the answer only),
DELETE /v1/keys/{key_id} revokes one, POST /v1/users registers a user (admin).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI

from adapters.http_api import install_error_handlers, install_health, install_http_metrics, install_request_guard
from adapters.http_auth import Authenticator
from adapters.observability import install_request_context
from application.command_handlers import CommandContext
from application.core_memory import CoreMemoryEdits
from application.idempotency import AnswerStore
from command_api import mem0_routes
from command_api.deps import CommandDeps
from command_api.routes import core_memory as core_memory_routes
from command_api.routes import keys, memories, memory, sharing, users

# The routes are in command_api/routes/ (one module per resource), the use cases in
# application/ (command_handlers.py, idempotency.py); this module wires them into one app.
BODY_LIMITS = {"/v1/memories/batch": 16 * 1024 * 1024}
DEFAULT_BODY_LIMIT = 1024 * 1024


def create_app(base: CommandContext, idempotency: AnswerStore, positions: Callable[[], Awaitable[dict[int, int]]],
               consistency_wait_ms: int, checks: dict[str, Callable[[], Awaitable[object]]], auth: Authenticator,
               infer_default: bool = False, lifespan=None,
               log_ends: Callable[[], Awaitable[dict[int, int]]] | None = None,
               core_memory: CoreMemoryEdits | None = None) -> FastAPI:
    app = FastAPI(title="recallstack command API", version="0.1.0", lifespan=lifespan,
                  description=__doc__ + "\n\nLimits: see each schema; oversize is 413, bad input 400/422.")
    install_error_handlers(app)
    install_request_guard(app, BODY_LIMITS, DEFAULT_BODY_LIMIT)
    install_health(app, checks)
    install_http_metrics(app, "command")
    install_request_context(app, "command-api")  # X-Request-ID: the correlation id of the events appended
    app.include_router(mem0_routes.router(auth))  # mem0's client (docs/mem0.md), over the native routes below
    deps = CommandDeps(base, idempotency, positions, consistency_wait_ms, auth, infer_default, log_ends, core_memory)
    for routes in (memories, memory, sharing, keys, users, core_memory_routes):
        app.include_router(routes.router(deps))
    return app
