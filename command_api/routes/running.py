"""How a command route runs its use case: with the request's correlation id, honouring
Idempotency-Key (application/idempotency.py), after read-your-writes on X-Consistency-Token,
and with the handlers' failures answered as HTTP errors."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from fastapi import Query, Request

from adapters.embedders.base import EmbedderUnavailable
from adapters.http_api import ApiError, wait_for_token
from adapters.kafka_log import LogUnavailable
from adapters.observability import request_id
from application import command_handlers as handlers
from application.idempotency import (IdempotencyConflict, IdempotencyInProgress, IdempotencyUnavailable,
                                     InvalidIdempotencyKey, fingerprint, once)
from command_api.deps import CommandDeps
from domain.identifiers import ID_PATTERN
from domain.identity import ExpiryAfterParent
from settings import EVENTS_TOPIC

log = logging.getLogger(__name__)
IDEMPOTENCY_HELP = ("Idempotency-Key (1-255 printable characters): a retry with the same key and body returns "
                    "the first answer and appends nothing")
Work = Callable[[handlers.CommandContext], Awaitable[dict]]


def user_param():
    """A fresh Query(...) per endpoint (FastAPI would merge parameters sharing one object)."""
    return Query(default=None, pattern=ID_PATTERN,
                 description="whose memory; default the API key's user (an admin key may name any user)")


def context_of(deps: CommandDeps, request: Request) -> handlers.CommandContext:
    return replace(deps.base, correlation_id=request_id(request))


async def run(deps: CommandDeps, request: Request, user_id: str, key: str | None, work: Work,
              creates: bool = False) -> dict:
    """Run a handler with the request's context, honouring Idempotency-Key, mapping failures.
    `creates`: the command only creates memories, so without Redis it still runs."""
    ctx = context_of(deps, request)

    async def request_fingerprint() -> str:
        return fingerprint(request.method, request.url.path + "?" + request.url.query, await request.body())

    try:
        return await once(deps.idempotency, user_id, key, request_fingerprint,
                          lambda ids: work(ctx if ids is None else replace(ctx, ids=ids)), creates)
    except InvalidIdempotencyKey as exc:
        raise ApiError(400, "invalid_request", str(exc), {"field": "Idempotency-Key"}) from exc
    except IdempotencyConflict as exc:
        raise ApiError(422, "idempotency_key_reused", str(exc), {"field": "Idempotency-Key"}) from exc
    except IdempotencyInProgress as exc:
        raise ApiError(409, "idempotency_in_progress", str(exc), {"field": "Idempotency-Key"}, retry_after=1) from exc
    except IdempotencyUnavailable as exc:  # the detail to the log (once logged it), never to the client
        raise ApiError(503, "idempotency_unavailable", "Redis is unreachable; cannot honour Idempotency-Key",
                       retry_after=2) from exc


async def consistent(deps: CommandDeps, token: str | None) -> None:
    """Read-your-writes before an ownership check: the Postgres read model applied `token`."""
    await wait_for_token(token, EVENTS_TOPIC, "postgres", deps.positions, deps.consistency_wait_ms, deps.log_ends,
                         field="X-Consistency-Token")


async def appended(coro):
    """What a handler returns; its failures as the HTTP errors a client gets."""
    try:
        return await coro
    except EmbedderUnavailable as exc:  # outages: the detail (addresses, server text) to the log only
        log.warning("embedder unavailable: %s", exc)
        raise ApiError(503, "embedder_unavailable", "the embedder is unavailable; retry", retry_after=5) from exc
    except LogUnavailable as exc:
        log.warning("event log unavailable: %s", exc)
        raise ApiError(503, "log_unavailable", "Kafka did not acknowledge the write; nothing was acknowledged, "
                       "retry (with the same Idempotency-Key to be safe)", retry_after=2) from exc
    except handlers.MemoryNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    except handlers.NothingToRestore as exc:
        raise ApiError(409, "not_restorable", str(exc)) from exc
    except handlers.ShareWithOwner as exc:  # after the ownership check: says nothing about others' memories
        raise ApiError(422, "invalid_request", str(exc), {"field": "grantee_user_id"}) from exc
    except handlers.UnknownGrantee as exc:
        raise ApiError(422, "unknown_user", str(exc), {"field": "grantee_user_id"}) from exc
    except ExpiryAfterParent as exc:
        raise ApiError(422, "invalid_request", str(exc), {"field": "expires_at"}) from exc
    except handlers.KeyNotFound as exc:
        raise ApiError(404, "not_found", str(exc), {"field": "key_id"}) from exc
    except handlers.AlreadyRevoked as exc:
        raise ApiError(409, "already_revoked", str(exc), {"field": "key_id"}) from exc
    except (OSError, ConnectionError) as exc:
        raise ApiError(503, "read_model_unavailable", f"cannot check the memory: {type(exc).__name__}",
                       retry_after=2) from exc
