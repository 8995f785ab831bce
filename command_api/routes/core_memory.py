"""Core memory blocks' edits: PUT /v1/core-memory/{label} (create or set the whole value and limit),
POST /v1/core-memory/{label}/append, POST /v1/core-memory/{label}/replace and DELETE
/v1/core-memory/{label}, each of the user's (query `user_id`) user-wide block, or of one agent's
(query `agent_id`). The rules are domain/core_memory.py, the serialized check-and-append
application/core_memory.py."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import AfterValidator, BaseModel, Field
from pydantic_core import PydanticCustomError

from adapters.http_api import ApiError
from adapters.http_auth import acting_user
from adapters.json_body import StrictJsonRoute
from application.core_memory import BlockEdit, CoreMemoryEdits, Edited
from application.requests import STRICT, encodable
from command_api.deps import CommandDeps
from command_api.routes.running import IDEMPOTENCY_HELP, appended, run, user_param
from domain import core_memory
from domain.consistency import InvalidConsistencyToken, NotYetApplied
from domain.identifiers import ID_PATTERN
from domain.identity import Principal

LIMIT_HELP = (f"the most tokens ({core_memory.ENCODING}) the block may hold, {core_memory.MIN_LIMIT_TOKENS}-"
              f"{core_memory.MAX_LIMIT_TOKENS}; default {core_memory.DEFAULT_LIMIT_TOKENS} for a new block, "
              "unchanged for an existing one")


# The characters no prompt should carry and the read models refuse (NUL): as a memory's text
# (application/requests.clean_text), but blank is allowed (an empty block, a deletion).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")


def block_text(value: str) -> str:
    value = unicodedata.normalize("NFC", encodable(value))
    if _CONTROL.search(value.replace("\r\n", "\n")):
        raise PydanticCustomError("control_character", "must not contain control characters (tab and newline are "
                                  "allowed)")
    return value


BlockText = Annotated[str, AfterValidator(block_text)]


class SetBlockRequest(BaseModel):
    model_config = STRICT
    value: BlockText = Field(default="", max_length=core_memory.MAX_CONTENT_CHARS, description="the whole block")
    limit_tokens: int | None = Field(default=None, ge=core_memory.MIN_LIMIT_TOKENS, le=core_memory.MAX_LIMIT_TOKENS,
                                     description=LIMIT_HELP)
    description: BlockText | None = Field(default=None, max_length=500, description="what the block is for")


class AppendRequest(BaseModel):
    model_config = STRICT
    content: BlockText = Field(min_length=1, max_length=core_memory.MAX_CONTENT_CHARS,
                         description="added on a new line at the end of the block")


class ReplaceRequest(BaseModel):
    model_config = STRICT
    old_content: BlockText = Field(min_length=1, max_length=core_memory.MAX_CONTENT_CHARS,
                             description="an exact passage of the block: every occurrence is replaced")
    new_content: BlockText = Field(max_length=core_memory.MAX_CONTENT_CHARS, description="\"\" deletes the passage")


def label_param():
    return Path(pattern=core_memory.LABEL_PATTERN, description="the block's slug: persona, human, project...")


def agent_param():
    return Query(default=None, pattern=ID_PATTERN, description="the agent whose block; none: the user-wide block")


def answer(edited: Edited, kind: str) -> dict:
    event = edited.event
    return {"results": [{"label": event.label, "agent_id": event.agent_id, "event": kind,
                         "version": getattr(event, "version", 1), "value": edited.value, "tokens": edited.tokens,
                         "status": "processing"}],
            "consistency_token": edited.token.encode()}


async def edited(edits: CoreMemoryEdits, edit: BlockEdit, ctx) -> Edited:
    """The edit, its refusals as HTTP errors (nothing appended)."""
    try:
        return await appended(edits.edit(edit, ctx.correlation_id, ctx.ids))
    except core_memory.BlockNotFound as exc:
        raise ApiError(404, "not_found", str(exc), {"field": "label"}) from exc
    except core_memory.BlockTooLarge as exc:
        raise ApiError(422, "block_too_large", str(exc), {"field": "limit_tokens", "limit_tokens": exc.limit,
                                                          "tokens": exc.size}) from exc
    except core_memory.OldContentNotFound as exc:
        raise ApiError(422, "old_content_not_found", str(exc), {"field": "old_content"}) from exc
    except core_memory.TooManyBlocks as exc:
        raise ApiError(422, "too_many_blocks", str(exc), {"field": "label", "max": core_memory.MAX_BLOCKS}) from exc
    except core_memory.BlockBusy as exc:
        raise ApiError(409, "core_memory_busy", str(exc), {"field": "label"}, retry_after=1) from exc
    except NotYetApplied as exc:
        raise ApiError(409, "core_memory_busy", "the block's previous edit is not yet in the read model; nothing was "
                       "changed, retry shortly", {"field": "label"}, retry_after=1) from exc
    except InvalidConsistencyToken as exc:  # a recorded token the log no longer has (a restored log)
        raise ApiError(409, "core_memory_busy", f"cannot order this edit: {exc}", {"field": "label"},
                       retry_after=1) from exc


def router(deps: CommandDeps) -> APIRouter:
    routes = APIRouter(route_class=StrictJsonRoute)  # bodies parsed strictly (adapters/json_body.py)
    auth = deps.auth

    async def edit(request: Request, principal: Principal, user_id: str | None, key: str | None, kind: str,
                   verb: str, **fields) -> dict:
        if deps.core_memory is None:
            raise ApiError(503, "unavailable", "core memory is not configured on this server")
        user_id = acting_user(principal, user_id, "write")
        command = BlockEdit(kind=kind, user_id=user_id, actor=principal.actor_for(user_id), **fields)

        async def work(ctx):
            return answer(await edited(deps.core_memory, command, ctx), verb)
        return await run(deps, request, user_id, key, work)

    @routes.put("/v1/core-memory/{label}", status_code=202, tags=["core memory"],
                summary="Create a core memory block, or set its whole value (and limit)")
    async def set_block(body: SetBlockRequest, request: Request, principal: Principal = Depends(auth),
                        label: str = label_param(), user_id: str | None = user_param(),
                        agent_id: str | None = agent_param(),
                        idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        return await edit(request, principal, user_id, idempotency_key, "set", "SET", label=label, agent_id=agent_id,
                          value=body.value, limit_tokens=body.limit_tokens, description=body.description)

    @routes.post("/v1/core-memory/{label}/append", status_code=202, tags=["core memory"],
                 summary="Append content to a core memory block, on a new line (Letta's core_memory_append)")
    async def append(body: AppendRequest, request: Request, principal: Principal = Depends(auth),
                     label: str = label_param(), user_id: str | None = user_param(),
                     agent_id: str | None = agent_param(),
                     idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        return await edit(request, principal, user_id, idempotency_key, "append", "APPEND", label=label,
                          agent_id=agent_id, content=body.content)

    @routes.post("/v1/core-memory/{label}/replace", status_code=202, tags=["core memory"],
                 summary="Replace a passage of a core memory block (Letta's core_memory_replace)")
    async def replace(body: ReplaceRequest, request: Request, principal: Principal = Depends(auth),
                      label: str = label_param(), user_id: str | None = user_param(),
                      agent_id: str | None = agent_param(),
                      idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        return await edit(request, principal, user_id, idempotency_key, "replace", "REPLACE", label=label,
                          agent_id=agent_id, old_content=body.old_content, new_content=body.new_content)

    @routes.delete("/v1/core-memory/{label}", status_code=202, tags=["core memory"],
                   summary="Delete a core memory block (its history stays until the user is erased)")
    async def delete_block(request: Request, principal: Principal = Depends(auth), label: str = label_param(),
                           user_id: str | None = user_param(), agent_id: str | None = agent_param(),
                           idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        return await edit(request, principal, user_id, idempotency_key, "delete", "DELETE", label=label,
                          agent_id=agent_id)

    return routes
