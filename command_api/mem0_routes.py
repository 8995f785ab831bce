"""mem0's writes (its `MemoryClient`: add, update, batch update and delete) on the command API.

Each route translates mem0's body (application/mem0_shapes.py) and runs the native route that
does the same (adapters/mem0_http.py), so validation, idempotency and errors are the native ones.
mem0's delete and delete_all use paths the native routes already answer (a trailing slash is the
same route): they need nothing here. What differs from mem0: docs/mem0.md.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Header, Path, Request

from adapters.http_api import ApiError
from adapters.json_body import StrictJsonRoute
from adapters.mem0_http import native, refusal, validated
from application import mem0_shapes as shapes
from application.requests import AddMemoryRequest, UpdateMemoryRequest
from domain.identifiers import UUID_PATTERN
from domain.identity import Principal

IDEMPOTENCY_HELP = ("Idempotency-Key (1-250 printable characters): a retry with the same key and body returns the "
                    "first answer and appends nothing (a batch keys each item as `<key>:<index>`)")
BATCH_BODY = Body(description="mem0's batch: {memories: [{memory_id, text?, metadata?}]}, 1-1,000 items")


def _shaped(translate, *args):
    try:
        return translate(*args)
    except shapes.Mem0ShapeError as exc:
        raise refusal(exc.field, str(exc).partition(": ")[2]) from exc


def router(auth) -> APIRouter:
    r = APIRouter(tags=["mem0"], route_class=StrictJsonRoute)  # bodies parsed strictly (adapters/json_body.py)

    @r.post("/v3/memories/add", status_code=202, summary="mem0's add (MemoryClient.add): messages, ids, metadata")
    async def mem0_add(request: Request, body: dict[str, Any] = Body(description="mem0's add body"),
                       principal: Principal = Depends(auth),
                       idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        native_body = validated(AddMemoryRequest, _shaped(shapes.add_body, body), shapes.mem0_field)
        answer = await native(request, "add_memory")(body=native_body, request=request, principal=principal,
                                                      idempotency_key=idempotency_key)
        return shapes.add_answer(answer)

    @r.put("/v1/memories/{memory_id}", status_code=202,
           summary="mem0's update (MemoryClient.update): new text and/or metadata")
    async def mem0_update(request: Request, body: dict[str, Any] = Body(description="{text?, metadata?}"),
                          principal: Principal = Depends(auth), memory_id: str = Path(pattern=UUID_PATTERN),
                          idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        wanted = _shaped(shapes.update_body, body)
        answer = await native(request, "update")(
            body=validated(UpdateMemoryRequest, wanted, shapes.mem0_field), request=request, principal=principal,
            memory_id=memory_id, user_id=None, x_consistency_token=None, idempotency_key=idempotency_key)
        return shapes.update_answer(memory_id.lower(), wanted, answer)

    @r.put("/v1/batch", status_code=202, summary="mem0's batch_update: up to 1,000 updates, validated whole first")
    async def mem0_batch_update(request: Request, body: dict[str, Any] = BATCH_BODY,
                                principal: Principal = Depends(auth),
                                idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        items = _shaped(shapes.batch_items, body)
        checked = [validated(UpdateMemoryRequest, wanted, lambda f, i=i: f"memories.{i}.{f}")
                   for i, (_memory_id, wanted) in enumerate(items)]
        update = native(request, "update")
        results, token = [], None
        for index, ((memory_id, _wanted), native_body) in enumerate(zip(items, checked)):
            answer = await _item(index, update(body=native_body, request=request, principal=principal,
                                               memory_id=memory_id, user_id=None, x_consistency_token=None,
                                               idempotency_key=_item_key(idempotency_key, index)))
            results += answer["results"]
            token = answer["consistency_token"]
        return shapes.batch_answer("updated", results, token)

    @r.delete("/v1/batch", status_code=202, summary="mem0's batch_delete: up to 1,000 deletes, validated whole first")
    async def mem0_batch_delete(request: Request, body: dict[str, Any] = BATCH_BODY,
                                principal: Principal = Depends(auth),
                                idempotency_key: str | None = Header(default=None, description=IDEMPOTENCY_HELP)):
        items = _shaped(shapes.batch_items, body)
        delete_one = native(request, "delete_one")
        results, token = [], None
        for index, (memory_id, _wanted) in enumerate(items):
            answer = await _item(index, delete_one(request=request, principal=principal, memory_id=memory_id,
                                                   user_id=None, x_consistency_token=None,
                                                   idempotency_key=_item_key(idempotency_key, index)))
            results += answer["results"]
            token = answer["consistency_token"]
        return shapes.batch_answer("deleted", results, token)

    return r


def _item_key(key: str | None, index: int) -> str | None:
    """Each item of a batch is its own native write, keyed `<key>:<index>`: a retry of the batch
    returns the items already applied and applies the rest."""
    if key is None:
        return None
    if not 1 <= len(key) <= 250 or not key.isprintable():
        raise ApiError(400, "invalid_request", "Idempotency-Key: 1-250 printable characters on a batch",
                       {"field": "Idempotency-Key"})
    return f"{key}:{index}"


async def _item(index: int, write):
    """A batch item's native write; its refusal names the item (`memories.3.memory_id`)."""
    try:
        return await write
    except ApiError as exc:
        if exc.status in (404, 422) and exc.details.get("field") in ("memory_id", None):
            exc.details = {**exc.details, "field": f"memories.{index}.memory_id"}
            exc.message = f"memories.{index}.memory_id: {exc.message}"
        raise
