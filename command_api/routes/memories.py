"""POST /v1/memories (add), POST /v1/memories/batch and DELETE /v1/memories (a whole scope):
the commands that create memories, or delete a scope's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Header, Query, Request

from adapters.http_api import ApiError
from adapters.http_auth import acting_user
from adapters.json_body import StrictJsonRoute
from application import command_handlers as handlers
from command_api.deps import CommandDeps
from application.requests import AddMemoryRequest, BatchAddRequest
from command_api.routes.running import IDEMPOTENCY_HELP, appended, run, user_param
from domain.commands import AddMemory, DeleteScope, ReceiveConversation
from domain.identifiers import ID_PATTERN
from domain.identity import Principal
from domain.turn_context import CONTEXT_TURNS


def add_commands(body: AddMemoryRequest, actor: str, field: str = "") -> list[AddMemory]:
    """The memories an add body stores; `field` prefixes the field a refusal names (a batch item's
    `memories.3.`)."""
    expires_at = body.expiry(datetime.now(timezone.utc))  # a ttl counts from now
    commands = [
        AddMemory(user_id=body.user_id, actor=actor, text=text, agent_id=body.agent_id,
                  run_id=body.run_id, app_id=body.app_id, metadata={**body.metadata, **extra},
                  categories=tuple(body.categories), importance=body.importance, happened_at=body.occurred_at,
                  embedding=tuple(body.embedding) if body.embedding is not None else None,
                  embedding_model=body.embedding_model, expires_at=expires_at)
        for text, extra in body.texts()
    ]
    if not commands:
        raise ApiError(422, "invalid_request", f"{field}messages: no user or assistant message to store",
                       {"field": f"{field}messages"})
    return commands


async def added(commands: list[AddMemory], ctx: handlers.CommandContext, field_of: Callable[[int, str], str],
                context_turns: int = CONTEXT_TURNS):
    """add_memories; a given vector of another model or dimension is a 422 naming its field."""
    try:
        return await handlers.add_memories(commands, ctx, context_turns)
    except handlers.EmbeddingMismatch as exc:
        field = field_of(exc.index, exc.field)
        raise ApiError(422, "invalid_request", f"{field}: {exc}", {"field": field}) from exc


def created_answer(events, token) -> dict:
    return {"results": [{"id": e.memory_id, "memory": e.text, "event": "ADD", "status": "processing"}
                        for e in events], "consistency_token": token.encode()}


def router(deps: CommandDeps) -> APIRouter:
    routes = APIRouter(route_class=StrictJsonRoute)  # bodies parsed strictly (adapters/json_body.py)
    auth = deps.auth

    @routes.post("/v1/memories", status_code=202, tags=["memories"],
                 summary="Add a memory (text) or memories from messages")
    async def add_memory(body: AddMemoryRequest, request: Request, principal: Principal = Depends(auth),
                         idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        body = body.model_copy(update={"user_id": acting_user(principal, body.user_id, "write")})
        actor = principal.actor_for(body.user_id)
        infer = deps.infer_default if body.infer is None else body.infer
        if infer and body.messages is not None:
            command = ReceiveConversation(
                user_id=body.user_id, actor=actor, agent_id=body.agent_id, run_id=body.run_id,
                app_id=body.app_id, metadata=body.metadata, happened_at=body.occurred_at,
                expires_at=body.expiry(datetime.now(timezone.utc)),
                messages=tuple((m.role, m.content) for m in body.messages))

            async def work(ctx):
                event, token = await appended(handlers.receive_conversation(command, ctx))
                return {"results": [], "conversation_id": event.conversation_id, "status": "queued",
                        "consistency_token": token.encode()}
        else:
            commands = add_commands(body, actor)

            async def work(ctx):
                return created_answer(*await appended(added(commands, ctx, lambda _index, field: field)))
        return await run(deps, request, body.user_id, idempotency_key, work, creates=True)

    @routes.post("/v1/memories/batch", status_code=202, tags=["memories"],
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
                                                        lambda index, field: f"memories.{item_of[index]}.{field}",
                                                        body.context_turns)))
        return await run(deps, request, owner, idempotency_key, work, creates=True)

    @routes.delete("/v1/memories", status_code=202, tags=["memories"],
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
        return await run(deps, request, user_id, idempotency_key, work)

    return routes
