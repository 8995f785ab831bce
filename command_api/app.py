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

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from fastapi import Depends, FastAPI, Header, Path, Query, Request

from adapters.embedders.base import EmbedderUnavailable
from adapters.http_api import (ApiError, install_error_handlers, install_health, install_http_metrics,
                               install_request_guard, wait_for_token)
from adapters.http_auth import Authenticator, acting_user, require_admin
from adapters.kafka_log import LogUnavailable
from adapters.observability import install_request_context, request_id
from application import command_handlers as handlers
from command_api.idempotency import (IdempotencyConflict, IdempotencyInProgress, IdempotencyStore,
                                     IdempotencyUnavailable, derived_id, fingerprint)
from command_api.requests import (AddMemoryRequest, BatchAddRequest, IssueKeyRequest, RegisterUserRequest,
                                  ShareRequest, UpdateMemoryRequest)
from domain.commands import (AddMemory, DeleteMemory, DeleteScope, EraseUser, IssueApiKey, ReceiveConversation,
                             RegisterUser,
                             RestoreMemory, RevokeApiKey, ShareMemory, UnshareMemory, UpdateMemory)
from domain.consistency import NotYetApplied, wait_until_applied
from domain.identifiers import ID_PATTERN, UUID_PATTERN
from domain.identity import ChainTooDeep, ExpiryAfterParent, Principal
from settings import EVENTS_TOPIC

log = logging.getLogger(__name__)
BODY_LIMITS = {"/v1/memories/batch": 16 * 1024 * 1024}
DEFAULT_BODY_LIMIT = 1024 * 1024
IDEMPOTENCY_HELP = ("Idempotency-Key (1-255 printable characters): a retry with the same key and body returns "
                    "the first answer and appends nothing")


def add_commands(body: AddMemoryRequest, actor: str, field: str = "") -> list[AddMemory]:
    """The memories an add body stores; `field` prefixes the field a refusal names (a batch item's
    `memories.3.`)."""
    commands = [
        AddMemory(user_id=body.user_id, actor=actor, text=text, agent_id=body.agent_id,
                  run_id=body.run_id, app_id=body.app_id, metadata={**body.metadata, **extra},
                  categories=tuple(body.categories), importance=body.importance, happened_at=body.occurred_at,
                  embedding=tuple(body.embedding) if body.embedding is not None else None,
                  embedding_model=body.embedding_model)
        for text, extra in body.texts()
    ]
    if not commands:
        raise ApiError(422, "invalid_request", f"{field}messages: no user or assistant message to store",
                       {"field": f"{field}messages"})
    return commands


async def added(commands: list[AddMemory], ctx: handlers.CommandContext, field_of: Callable[[int, str], str]):
    """add_memories; a given vector of another model or dimension is a 422 naming its field."""
    try:
        return await handlers.add_memories(commands, ctx)
    except handlers.EmbeddingMismatch as exc:
        field = field_of(exc.index, exc.field)
        raise ApiError(422, "invalid_request", f"{field}: {exc}", {"field": field}) from exc


def user_param():
    """A fresh Query(...) per endpoint (FastAPI would merge parameters sharing one object)."""
    return Query(default=None, pattern=ID_PATTERN,
                 description="whose memory; default the API key's user (an admin key may name any user)")


def created_answer(events, token) -> dict:
    return {"results": [{"id": e.memory_id, "memory": e.text, "event": "ADD", "status": "processing"}
                        for e in events], "consistency_token": token.encode()}


def create_app(base: handlers.CommandContext, idempotency: IdempotencyStore,
               positions: Callable[[], Awaitable[dict[int, int]]], consistency_wait_ms: int,
               checks: dict[str, Callable[[], Awaitable[object]]], auth: Authenticator,
               infer_default: bool = False, lifespan=None,
               log_ends: Callable[[], Awaitable[dict[int, int]]] | None = None) -> FastAPI:
    app = FastAPI(title="recallstack command API", version="0.1.0", lifespan=lifespan,
                  description=__doc__ + "\n\nLimits: see each schema; oversize is 413, bad input 400/422.")
    install_error_handlers(app)
    install_request_guard(app, BODY_LIMITS, DEFAULT_BODY_LIMIT)
    install_health(app, checks)
    install_http_metrics(app, "command")
    install_request_context(app, "command-api")  # X-Request-ID: the correlation id of the events appended

    async def run(request: Request, user_id: str, key: str | None, work: Callable[[handlers.CommandContext], Awaitable[dict]],
                  creates: bool = False) -> dict:
        """Run a handler with the request's context, honouring Idempotency-Key, mapping failures.
        `creates`: the command only creates memories, so without Redis it still runs (below)."""
        ctx = replace(base, correlation_id=request_id(request))
        fp = None
        recorded = key is not None  # the key's claim and answer are kept in Redis
        if key is not None:
            if not 1 <= len(key) <= 255 or not key.isprintable():
                raise ApiError(400, "invalid_request", "Idempotency-Key: 1-255 printable characters",
                               {"field": "Idempotency-Key"})
            fp = fingerprint(request.method, request.url.path + "?" + request.url.query, await request.body())
            try:
                earlier = await idempotency.begin(user_id, key, fp)
            except IdempotencyConflict as exc:
                raise ApiError(422, "idempotency_key_reused", str(exc), {"field": "Idempotency-Key"}) from exc
            except IdempotencyInProgress as exc:
                raise ApiError(409, "idempotency_in_progress", str(exc), {"field": "Idempotency-Key"},
                               retry_after=1) from exc
            except IdempotencyUnavailable as exc:  # the detail to the log, never to the client
                if not creates:
                    log.warning("idempotency store: %s", exc)
                    raise ApiError(503, "idempotency_unavailable", "Redis is unreachable; cannot honour "
                                   "Idempotency-Key", retry_after=2) from exc
                # A create runs without Redis: its ids derive from the key and the body, so a retry
                # appends the same memory again and every read model keeps the first (a create
                # never overwrites). An update could not be retried that safely: it stays 503.
                log.warning("idempotency store: %s; a keyed create appends unrecorded", exc)
                earlier, recorded = None, False
            if earlier is not None:
                return earlier
            ctx = replace(ctx, ids=lambda kind, index: derived_id(user_id, f"{key}\x00{fp}", kind, index))
        try:
            answer = await work(ctx)
        except BaseException:
            if recorded:
                await idempotency.abandon(user_id, key)
            raise
        if recorded:
            try:
                await idempotency.finish(user_id, key, fp, answer)
            except Exception:  # the write is in the log: acknowledge it; the claim expires by itself
                log.warning("could not store the answer of Idempotency-Key for %s", user_id, exc_info=True)
        return answer

    async def appended(coro):
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

    @app.post("/v1/memories", status_code=202, tags=["memories"],
              summary="Add a memory (text) or memories from messages")
    async def add_memory(body: AddMemoryRequest, request: Request, principal: Principal = Depends(auth),
                         idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        body = body.model_copy(update={"user_id": acting_user(principal, body.user_id, "write")})
        actor = principal.actor_for(body.user_id)
        infer = infer_default if body.infer is None else body.infer
        if infer and body.messages is not None:
            command = ReceiveConversation(
                user_id=body.user_id, actor=actor, agent_id=body.agent_id, run_id=body.run_id,
                app_id=body.app_id, metadata=body.metadata, happened_at=body.occurred_at,
                messages=tuple((m.role, m.content) for m in body.messages))

            async def work(ctx):
                event, token = await appended(handlers.receive_conversation(command, ctx))
                return {"results": [], "conversation_id": event.conversation_id, "status": "queued",
                        "consistency_token": token.encode()}
        else:
            commands = add_commands(body, actor)

            async def work(ctx):
                return created_answer(*await appended(added(commands, ctx, lambda _index, field: field)))
        return await run(request, body.user_id, idempotency_key, work, creates=True)

    @app.post("/v1/memories/batch", status_code=202, tags=["memories"],
              summary="Add up to 1,000 memories in one call, all or nothing")
    async def add_batch(body: BatchAddRequest, request: Request, principal: Principal = Depends(auth),
                        idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        commands, item_of = [], []  # item_of[i]: the index in `memories` of command i
        for index, item in enumerate(body.memories):
            if item.infer:
                raise ApiError(422, "invalid_request", f"memories.{index}.infer: batch stores memories as given",
                               {"field": f"memories.{index}.infer"})
            item = item.model_copy(update={"user_id": acting_user(principal, item.user_id, "write")})
            made = add_commands(item, principal.actor_for(item.user_id), f"memories.{index}.")
            commands += made
            item_of += [index] * len(made)
        users = {c.user_id for c in commands}
        owner = next(iter(users)) if len(users) == 1 else "*batch*"

        async def work(ctx):
            return created_answer(*await appended(added(commands, ctx,
                                                        lambda index, field: f"memories.{item_of[index]}.{field}")))
        return await run(request, owner, idempotency_key, work, creates=True)

    async def consistent(token: str | None) -> None:
        await wait_for_token(token, EVENTS_TOPIC, "postgres", positions, consistency_wait_ms, log_ends,
                             field="X-Consistency-Token")

    @app.patch("/v1/memories/{memory_id}", status_code=202, tags=["memories"], summary="Update text and/or metadata")
    async def update(body: UpdateMemoryRequest, request: Request, principal: Principal = Depends(auth),
                     memory_id: str = Path(pattern=UUID_PATTERN), user_id: str | None = user_param(),
                     x_consistency_token: str | None = Header(default=None),
                     idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        user_id = acting_user(principal, user_id, "write", one_memory=True)
        await consistent(x_consistency_token)
        command = UpdateMemory(user_id=user_id, actor=principal.actor_for(user_id), memory_id=memory_id.lower(),
                               text=body.text,
                               metadata=body.metadata, importance=body.importance,
                               categories=tuple(body.categories) if body.categories is not None else None)

        async def work(ctx):
            event, token = await appended(handlers.update_memory(command, ctx))
            return {"results": [{"id": event.memory_id, "event": "UPDATE", "status": "processing"}],
                    "consistency_token": token.encode()}
        return await run(request, user_id, idempotency_key, work)

    @app.delete("/v1/memories/{memory_id}", status_code=202, tags=["memories"], summary="Delete one memory")
    async def delete_one(request: Request, principal: Principal = Depends(auth),
                         memory_id: str = Path(pattern=UUID_PATTERN), user_id: str | None = user_param(),
                         x_consistency_token: str | None = Header(default=None),
                         idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        user_id = acting_user(principal, user_id, "write", one_memory=True)
        await consistent(x_consistency_token)
        command = DeleteMemory(user_id=user_id, actor=principal.actor_for(user_id), memory_id=memory_id.lower())

        async def work(ctx):
            event, token = await appended(handlers.delete_memory(command, ctx))
            return {"results": [{"id": event.memory_id, "event": "DELETE", "status": "processing"}],
                    "consistency_token": token.encode()}
        return await run(request, user_id, idempotency_key, work)

    @app.post("/v1/memories/{memory_id}/restore", status_code=202, tags=["memories"],
              summary="Restore a forgotten or archived memory (undo the forgetting worker or a consolidation)")
    async def restore(request: Request, principal: Principal = Depends(auth),
                      memory_id: str = Path(pattern=UUID_PATTERN), user_id: str | None = user_param(),
                      x_consistency_token: str | None = Header(default=None),
                      idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        user_id = acting_user(principal, user_id, "write", one_memory=True)
        await consistent(x_consistency_token)
        command = RestoreMemory(user_id=user_id, actor=principal.actor_for(user_id), memory_id=memory_id.lower())

        async def work(ctx):
            event, token = await appended(handlers.restore_memory(command, ctx))
            return {"results": [{"id": event.memory_id, "event": "RESTORE", "status": "processing"}],
                    "consistency_token": token.encode()}
        return await run(request, user_id, idempotency_key, work)

    @app.delete("/v1/memories", status_code=202, tags=["memories"],
                summary="Delete every memory of a scope (user_id, narrowed by agent_id / run_id / app_id)")
    async def delete_all(request: Request, principal: Principal = Depends(auth), user_id: str | None = user_param(),
                         agent_id: str | None = Query(default=None, pattern=ID_PATTERN),
                         run_id: str | None = Query(default=None, pattern=ID_PATTERN),
                         app_id: str | None = Query(default=None, pattern=ID_PATTERN),
                         idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        user_id = acting_user(principal, user_id, "write")
        command = DeleteScope(user_id=user_id, actor=principal.actor_for(user_id), agent_id=agent_id, run_id=run_id,
                              app_id=app_id)

        async def work(ctx):
            event, token = await appended(handlers.delete_scope(command, ctx))
            scope = {k: v for k, v in (("user_id", user_id), ("agent_id", agent_id), ("run_id", run_id),
                                       ("app_id", app_id)) if v}
            return {"results": [], "event": "DELETE_ALL", "scope": scope, "status": "processing",
                    "consistency_token": token.encode()}
        return await run(request, user_id, idempotency_key, work)

    @app.post("/v1/memories/{memory_id}/shares", status_code=202, tags=["sharing"],
              summary="Let another user read this memory (read-only, until unshared)")
    async def share(body: ShareRequest, request: Request, principal: Principal = Depends(auth),
                    memory_id: str = Path(pattern=UUID_PATTERN), user_id: str | None = user_param(),
                    x_consistency_token: str | None = Header(default=None),
                    idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        user_id = acting_user(principal, user_id, "write", one_memory=True)
        await consistent(x_consistency_token)
        command = ShareMemory(user_id=user_id, actor=principal.actor_for(user_id), memory_id=memory_id.lower(),
                              grantee_user_id=body.grantee_user_id)

        async def work(ctx):
            event, token = await appended(handlers.share_memory(command, ctx))
            return {"results": [{"id": event.memory_id, "event": "SHARE", "grantee_user_id": event.grantee_user_id,
                                 "permission": event.permission, "status": "processing"}],
                    "consistency_token": token.encode()}
        return await run(request, user_id, idempotency_key, work)

    @app.delete("/v1/memories/{memory_id}/shares/{grantee_user_id}", status_code=202, tags=["sharing"],
                summary="Stop sharing this memory with a user")
    async def unshare(request: Request, principal: Principal = Depends(auth),
                      memory_id: str = Path(pattern=UUID_PATTERN), grantee_user_id: str = Path(pattern=ID_PATTERN),
                      user_id: str | None = user_param(),
                      idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        user_id = acting_user(principal, user_id, "write", one_memory=True)
        command = UnshareMemory(user_id=user_id, actor=principal.actor_for(user_id), memory_id=memory_id.lower(),
                                grantee_user_id=grantee_user_id)

        async def work(ctx):
            event, token = await appended(handlers.unshare_memory(command, ctx))
            return {"results": [{"id": event.memory_id, "event": "UNSHARE", "grantee_user_id": grantee_user_id,
                                 "status": "processing"}], "consistency_token": token.encode()}
        return await run(request, user_id, idempotency_key, work)

    @app.post("/v1/keys", status_code=201, tags=["keys"],
              summary="Issue an API key (the secret is in this answer only; it is stored hashed)")
    async def issue_key(body: IssueKeyRequest, request: Request, principal: Principal = Depends(auth)):
        user_id = acting_user(principal, body.user_id, "write")
        if not principal.is_admin and not set(body.scopes) <= set(principal.scopes) - {"admin"}:
            raise ApiError(403, "forbidden", "scopes: a non-admin key may issue only read or write keys it holds "
                           f"itself ({', '.join(s for s in principal.scopes if s != 'admin')})", {"field": "scopes"})
        try:  # a key issued by a key is its child: revoked with it, expiring no later (domain/identity.py)
            parent_key_id, parent_expires_at = principal.issue_child()
        except ChainTooDeep as exc:
            raise ApiError(403, "forbidden", str(exc)) from exc
        command = IssueApiKey(user_id=user_id, actor=principal.actor_for(user_id), scopes=tuple(body.scopes),
                              name=body.name, expires_at=body.expires_at, parent_key_id=parent_key_id,
                              parent_expires_at=parent_expires_at)
        ctx = replace(base, correlation_id=request_id(request))
        issued, event, token = await appended(handlers.issue_api_key(command, ctx))
        try:  # answer once the key works: the read model every service checks keys against has it
            await wait_until_applied(token.encode(), EVENTS_TOPIC, "postgres", positions, consistency_wait_ms)
            usable = True
        except (NotYetApplied, *_DOWN) as exc:
            log.warning("key %s issued but not yet projected: %s", issued.prefix, exc)
            usable = False
        return {"key_id": issued.key_id, "key": issued.secret, "prefix": issued.prefix, "user_id": user_id,
                "scopes": list(issued.scopes), "name": body.name,
                "expires_at": event.expires_at.isoformat() if event.expires_at else None,
                "parent_key_id": event.parent_key_id,
                "usable": usable, "consistency_token": token.encode(),
                "note": "store the key now: it is shown only once"}

    @app.delete("/v1/keys/{key_id}", status_code=202, tags=["keys"],
                summary="Revoke an API key (refused everywhere within a second)")
    async def revoke_key(request: Request, principal: Principal = Depends(auth),
                         key_id: str = Path(pattern=UUID_PATTERN),
                         user_id: str | None = Query(default=None, pattern=ID_PATTERN,
                                                     description="the key's owner; an admin key may omit it"),
                         reason: str | None = Query(default=None, max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")):
        key_id = key_id.lower()
        if principal.is_admin and user_id is None:
            found = await appended(base.identity.key(key_id))
            user_id = found[0] if found else principal.user_id or ""
        user_id = acting_user(principal, user_id, "write", one_memory=True)
        command = RevokeApiKey(user_id=user_id, actor=principal.actor_for(user_id), key_id=key_id, reason=reason)
        ctx = replace(base, correlation_id=request_id(request))
        event, token = await appended(handlers.revoke_api_key(command, ctx))
        return {"key_id": event.key_id, "event": "REVOKE", "status": "processing", "consistency_token": token.encode()}

    @app.post("/v1/users", status_code=202, tags=["users"], summary="Register a user (admin)")
    async def register_user(body: RegisterUserRequest, request: Request, principal: Principal = Depends(auth)):
        require_admin(principal)
        command = RegisterUser(user_id=body.user_id, actor=principal.actor_for(body.user_id),
                               display_name=body.display_name, is_admin=body.is_admin)
        ctx = replace(base, correlation_id=request_id(request))
        event, token = await appended(handlers.register_user(command, ctx))
        return {"user_id": event.user_id, "event": "REGISTER", "status": "processing",
                "consistency_token": token.encode()}

    @app.delete("/v1/users/{user_id}", status_code=202, tags=["users"],
                summary="Erase a user for good (admin): data keys destroyed, every read model purged")
    async def erase_user(request: Request, principal: Principal = Depends(auth),
                         user_id: str = Path(pattern=ID_PATTERN),
                         confirm: bool = Query(default=False, description="must be true: erasure cannot be undone"),
                         reason: str | None = Query(default=None, max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")):
        require_admin(principal)
        if not confirm:
            raise ApiError(422, "invalid_request", "confirm: must be true (erasure destroys the user's data keys and "
                           "cannot be undone)", {"field": "confirm"})
        command = EraseUser(user_id=user_id, actor=principal.actor_for(user_id), reason=reason)
        ctx = replace(base, correlation_id=request_id(request))
        event, token = await appended(handlers.erase_user(command, ctx))
        return {"user_id": user_id, "event": "ERASE", "event_id": event.event_id, "status": "processing",
                "consistency_token": token.encode()}

    return app


_DOWN = (OSError, ConnectionError)
