"""mem0's request and answer shapes, mapped onto recallstack's own (pure: dicts in, dicts out).

mem0's `MemoryClient` (package mem0ai) talks to its platform's routes (/v1/ping/, /v3/memories/add/,
/v3/memories/search/, /v3/memories/, /v1/memories/{id}/, /v1/batch/ ...). The mem0 routes of both
APIs (command_api/mem0_routes.py, query_api/mem0_routes.py) translate a mem0 body into the body of
the native route that does the same thing, let the native route run it (same validation, use
cases, idempotency and errors), and translate its answer back. What differs is in docs/mem0.md.

A mem0 body this cannot map raises Mem0ShapeError naming the field (the APIs answer 422 with it,
nothing appended); everything else is validated by the native request models, as any request.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

from domain.identifiers import ID_PATTERN, UUID_PATTERN

ENTITY_IDS = ("user_id", "agent_id", "run_id", "app_id")
MAX_LIMIT = 100  # the native search's largest `limit`; mem0 allows top_k up to 1,000
MAX_BATCH = 1_000  # mem0's batch update and delete take at most 1,000 memories
# Fields of mem0's bodies that recallstack accepts and ignores (platform features it has no
# counterpart for: project settings, output formats, keyword-only search ...). `rerank` is mapped:
# the native search's rerank stage (application/reranking.py).
IGNORED_ADD = frozenset({
    "custom_categories", "custom_instructions", "agent_custom_instructions",
    "structured_data_schema", "async_mode", "output_format", "version", "includes", "excludes", "enable_graph",
    "immutable", "org_id", "project_id"})
IGNORED_SEARCH = frozenset({
    "keyword_search", "fields", "show_expired", "latest_only", "filter_memories", "output_format",
    "version", "enable_graph", "org_id", "project_id"})
IGNORED_LIST = frozenset({"show_expired", "latest_only", "fields", "output_format", "version", "enable_graph",
                          "org_id", "project_id"})
IGNORED_UPDATE = frozenset({"timestamp"})
# The native event of a memory's history, as mem0 names its history events.
HISTORY_EVENTS = {"MemoryCreated": "ADD", "MemoryUpdated": "UPDATE", "MemoryDeleted": "DELETE",
                  "MemoryScopeDeleted": "DELETE", "MemoryForgotten": "DELETE", "MemoryConsolidated": "UPDATE",
                  "MemoryRestored": "ADD", "MemoryExpired": "DELETE"}
# Native field names in a refusal, said as mem0's body said them.
_MEM0_FIELD = {"limit": "top_k", "reference_time": "reference_date", "occurred_at": "timestamp",
               "expires_at": "expiration_date"}
_UUID = re.compile(UUID_PATTERN)
_ID = re.compile(ID_PATTERN)


class Mem0ShapeError(ValueError):
    """A mem0 body recallstack cannot map; `field` names where (e.g. `filters.user_id`)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


def mem0_field(native_field: str) -> str:
    """The name mem0's body gave a field the native validation names (`limit` is `top_k`)."""
    head, dot, rest = native_field.partition(".")
    return _MEM0_FIELD.get(head, head) + dot + rest


def _object(value: Any, field: str) -> dict:
    if not isinstance(value, dict):
        raise Mem0ShapeError(field, "must be a JSON object")
    return value


def _refuse_unknown(body: dict, known: set[str], ignored: frozenset[str], what: str) -> None:
    unknown = sorted(set(body) - known - ignored)
    if unknown:
        raise Mem0ShapeError(unknown[0], f"not a field of mem0's {what} that recallstack knows (see docs/mem0.md)")


# --- filters: mem0 puts the entity ids in them; recallstack scopes by them ---------------------

def _entity(key: str, value: Any, field: str) -> tuple[str | None, dict | None]:
    """(the scope's value, or a filter condition that stands for it) of one entity id condition."""
    if isinstance(value, dict) and set(value) == {"eq"}:
        value = value["eq"]
    if value == "*":  # mem0: any value, as long as there is one
        if key == "user_id":
            raise Mem0ShapeError(field, "recallstack searches one user's memories at a time: name the user "
                                        "(an admin key may name any user)")
        return None, {key: {"exists": True}}
    if isinstance(value, str):
        return value, None
    if key == "user_id":
        raise Mem0ShapeError(field, "must be one user id (a string): recallstack reads one user's memories at a time")
    return None, {key: value}  # in / ne / ...: a filter the native parser checks


def split_filters(filters: Any, path: str = "filters") -> tuple[dict[str, str], dict | None]:
    """mem0's filters as (scope, the rest): entity ids at the top or in the top-level AND become the
    scope (user_id, agent_id, run_id, app_id); every other condition stays a filter tree in mem0's
    v2 shape, which is recallstack's too (domain/filters.py checks it)."""
    if filters is None:
        return {}, None
    filters = _object(filters, path)
    scope: dict[str, str] = {}
    conditions: list[dict] = []

    def take(key: str, value: Any, field: str) -> None:
        found, condition = _entity(key, value, field)
        if found is not None:
            if scope.get(key, found) != found:
                raise Mem0ShapeError(field, f"{key} is given twice with different values")
            scope[key] = found
        if condition is not None:
            conditions.append(condition)

    for key, value in filters.items():
        if key in ENTITY_IDS:
            take(key, value, f"{path}.{key}")
        elif key == "AND" and isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict) and len(item) == 1 and next(iter(item)) in ENTITY_IDS:
                    name = next(iter(item))
                    take(name, item[name], f"{path}.AND[{index}].{name}")
                else:
                    conditions.append(item)
        else:
            conditions.append({key: value})
    if not conditions:
        return scope, None
    return scope, conditions[0] if len(conditions) == 1 else {"AND": conditions}


def _scope(body: dict, filters_scope: dict[str, str]) -> dict[str, str]:
    """Entity ids given at the top of the body (mem0's add takes them there) and in its filters."""
    scope = dict(filters_scope)
    for key in ENTITY_IDS:
        if body.get(key) is not None:
            if key in scope and scope[key] != body[key]:
                raise Mem0ShapeError(key, f"differs from filters.{key}")
            scope[key] = body[key]
    for key, value in scope.items():  # checked here: get_all's scope meets no request model
        if not isinstance(value, str) or not _ID.fullmatch(value):
            raise Mem0ShapeError(key if key in body else f"filters.{key}", "an id: 1-128 of A-Z a-z 0-9 _ - . : @, "
                                 "starting with a letter or digit")
    return scope


def _with(filters: dict | None, extra: list[dict]) -> dict | None:
    items = ([filters] if filters else []) + extra
    if not items:
        return None
    return items[0] if len(items) == 1 else {"AND": items}


def _instant(value: Any, field: str) -> str:
    """A time as mem0 gives it (Unix seconds, YYYY-MM-DD or ISO 8601) as ISO 8601."""
    if isinstance(value, bool):
        raise Mem0ShapeError(field, "a Unix time, YYYY-MM-DD or ISO 8601")
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value, timezone.utc).isoformat()
        except (OverflowError, OSError, ValueError) as exc:
            raise Mem0ShapeError(field, "a Unix time out of range") from exc
    if isinstance(value, str):
        try:
            return (date.fromisoformat(value).isoformat() + "T00:00:00+00:00" if len(value) == 10
                    else datetime.fromisoformat(value).isoformat())
        except ValueError as exc:
            raise Mem0ShapeError(field, "a Unix time, YYYY-MM-DD or ISO 8601") from exc
    raise Mem0ShapeError(field, "a Unix time, YYYY-MM-DD or ISO 8601")


def expires_at_of(value: Any) -> str:
    """mem0's `expiration_date` as the native `expires_at`: a YYYY-MM-DD date is inclusive, as in
    mem0 (the memory is there all through that day in UTC and leaves at the next midnight); an ISO
    8601 time is taken as it is."""
    if isinstance(value, str) and len(value) == 10:
        try:
            return datetime.combine(date.fromisoformat(value) + timedelta(days=1), datetime.min.time(),
                                    timezone.utc).isoformat()
        except (ValueError, OverflowError) as exc:
            raise Mem0ShapeError("expiration_date", "a YYYY-MM-DD date or an ISO 8601 time") from exc
    if isinstance(value, str):
        return _instant(value, "expiration_date")
    raise Mem0ShapeError("expiration_date", "a YYYY-MM-DD date or an ISO 8601 time")


# --- requests ----------------------------------------------------------------------------------

def add_body(body: Any) -> dict:
    """POST /v3/memories/add/ as the body of POST /v1/memories."""
    body = _object(body, "body")
    _refuse_unknown(body, {"messages", "metadata", "infer", "timestamp", "expiration_date", "filters", *ENTITY_IDS},
                    IGNORED_ADD, "add")
    filters_scope, rest = split_filters(body.get("filters"))
    if rest is not None:
        raise Mem0ShapeError("filters", "add takes only entity ids (user_id, agent_id, run_id, app_id) in filters")
    native: dict[str, Any] = _scope(body, filters_scope)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise Mem0ShapeError("messages", "a list of {role, content} (mem0's client makes one from a string)")
    # An OpenAI-style `name` on a message is dropped; anything else the native validation names.
    native["messages"] = [{k: v for k, v in m.items() if k != "name"} if isinstance(m, dict) else m for m in messages]
    for key in ("metadata", "infer"):
        if body.get(key) is not None:
            native[key] = body[key]
    if body.get("timestamp") is not None:
        native["occurred_at"] = _instant(body["timestamp"], "timestamp")
    if body.get("expiration_date") is not None:
        native["expires_at"] = expires_at_of(body["expiration_date"])
    return native


def search_body(body: Any) -> dict:
    """POST /v3/memories/search/ as the body of POST /v1/memories/search."""
    body = _object(body, "body")
    _refuse_unknown(body, {"query", "filters", "top_k", "threshold", "rerank", "categories", "metadata",
                           "reference_date", *ENTITY_IDS}, IGNORED_SEARCH, "search")
    filters_scope, rest = split_filters(body.get("filters"))
    native: dict[str, Any] = {**_scope(body, filters_scope), "query": body.get("query")}
    extra = []
    if body.get("categories") is not None:
        extra.append({"categories": {"in": body["categories"]}})
    if body.get("metadata") is not None:
        extra.append({"metadata": body["metadata"]})
    filters = _with(rest, extra)
    if filters is not None:
        native["filters"] = filters
    top_k = body.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise Mem0ShapeError("top_k", "a whole number, at least 1")
        native["limit"] = min(top_k, MAX_LIMIT)
    for option in ("threshold", "rerank"):  # checked by the native request (a bool for rerank)
        if body.get(option) is not None:
            native[option] = body[option]
    if body.get("reference_date") is not None:
        native["reference_time"] = _instant(body["reference_date"], "reference_date")
    return native


def list_scope(body: Any) -> dict:
    """POST /v3/memories/ (get_all) as the parameters of GET /v1/memories: user_id, agent_id,
    run_id, app_id and `filters` (a tree, or None)."""
    body = _object(body if body is not None else {}, "body")
    _refuse_unknown(body, {"filters", "start_date", "end_date", "categories", *ENTITY_IDS}, IGNORED_LIST, "get_all")
    filters_scope, rest = split_filters(body.get("filters"))
    extra = []
    if body.get("start_date") is not None:
        extra.append({"created_at": {"gte": _instant(body["start_date"], "start_date")}})
    if body.get("end_date") is not None:
        extra.append({"created_at": {"lte": _instant(body["end_date"], "end_date")}})
    if body.get("categories") is not None:
        extra.append({"categories": {"in": body["categories"]}})
    return {**{k: None for k in ENTITY_IDS}, **_scope(body, filters_scope), "filters": _with(rest, extra)}


def update_body(body: Any, field: str = "") -> dict:
    """PUT /v1/memories/{id}/ (text, metadata, expiration_date) as the body of PATCH
    /v1/memories/{id}; `expiration_date: null` clears the expiry (mem0's client sends it only when
    asked); mem0's `timestamp` is accepted and ignored."""
    body = _object(body, field.rstrip(".") or "body")
    unknown = sorted(set(body) - {"text", "metadata", "memory_id", "expiration_date"} - IGNORED_UPDATE)
    if unknown:
        raise Mem0ShapeError(field + unknown[0], "not a field of mem0's update that recallstack knows")
    native = {key: body[key] for key in ("text", "metadata") if body.get(key) is not None}
    if "expiration_date" in body:
        value = body["expiration_date"]
        native["expires_at"] = None if value is None else expires_at_of(value)
    return native


def batch_items(body: Any) -> list[tuple[str, dict]]:
    """PUT or DELETE /v1/batch/ `{memories: [{memory_id, text?, metadata?}]}` as (memory id, the
    native update body) per item; for a delete the bodies are ignored."""
    body = _object(body, "body")
    memories = body.get("memories")
    if set(body) - {"memories"}:
        raise Mem0ShapeError(sorted(set(body) - {"memories"})[0], "batch takes only `memories`")
    if not isinstance(memories, list) or not memories:
        raise Mem0ShapeError("memories", "a list of 1-1,000 {memory_id, text?, metadata?}")
    if len(memories) > MAX_BATCH:
        raise Mem0ShapeError("memories", f"{len(memories)} memories, at most {MAX_BATCH} per batch")
    items = []
    for index, item in enumerate(memories):
        field = f"memories.{index}."
        item = _object(item, field.rstrip("."))
        memory_id = item.get("memory_id")
        if not isinstance(memory_id, str) or not _UUID.fullmatch(memory_id):
            raise Mem0ShapeError(field + "memory_id", "a memory id (a UUID)")
        items.append((memory_id.lower(), update_body(item, field)))
    return items


# --- answers -----------------------------------------------------------------------------------

def ping_answer(user_id: str | None, scopes: list[str]) -> dict:
    """What mem0's client reads from /v1/ping/ (its key check). It needs an org and a project id to
    start (its project manager checks them): recallstack has neither, so the org is `recallstack`
    and the project the key's user (mem0's project operations are not served: 404)."""
    return {"status": "ok", "message": "the API key is valid", "user_id": user_id, "scopes": scopes,
            "org_id": "recallstack", "project_id": user_id or "recallstack", "user_email": None}


def add_answer(native: dict) -> dict:
    """mem0's queued-add answer (message, status, event_id) beside the native one (results with the
    memory ids, consistency_token)."""
    results = native.get("results") or []
    event_id = native.get("conversation_id") or (results[0]["id"] if results else None)
    return {**native, "message": "Memory processing has been queued for background execution"
            if native.get("status") == "queued" else f"{len(results)} memories added", "status": "PENDING",
            "event_id": event_id}


def search_answer(native: dict) -> dict:
    """mem0's `results`, and what was left out (`degraded`: a source, or the rerank) when anything was."""
    return {"results": native["results"], **({"degraded": native["degraded"]} if native.get("degraded") else {})}


def list_answer(native: dict, path: str) -> dict:
    """A native page as mem0's paginated list: count, next, previous (relative URLs), results."""
    page, size = native["page"], native["page_size"]
    return {"count": native["total"],
            "next": f"{path}?page={page + 1}&page_size={size}" if native["has_more"] else None,
            "previous": f"{path}?page={page - 1}&page_size={size}" if page > 1 else None,
            "results": native["results"]}


def history_answer(native: dict, user_id: str) -> list[dict]:
    """A memory's native history as mem0's list of changes (old_memory, new_memory, event)."""
    entries, text = [], None
    for change in native["history"]:
        before, after = change.get("before") or {}, change.get("after") or {}
        old = before.get("memory") or text
        text = after.get("memory") or (None if HISTORY_EVENTS.get(change["event"]) == "DELETE" else old)
        entries.append({"id": change["event_id"], "memory_id": native["memory_id"],
                        "event": HISTORY_EVENTS.get(change["event"], change["event"]),
                        "old_memory": old, "new_memory": text, "input": [], "user_id": user_id, "categories": [],
                        "metadata": after.get("metadata"), "created_at": change["at"], "updated_at": change["at"],
                        "actor": change["actor"], "reason": change["reason"], "recallstack_event": change["event"]})
    return entries


def update_answer(memory_id: str, body: dict, native: dict) -> dict:
    return {"id": memory_id, **({"memory": body["text"]} if "text" in body else {}),
            **({"metadata": body["metadata"]} if "metadata" in body else {}),
            "message": "Memory updated successfully!", "event": "UPDATE", "status": "processing",
            "consistency_token": native["consistency_token"]}


def batch_answer(verb: str, results: list[dict], token: str | None) -> dict:
    return {"message": f"Successfully {verb} {len(results)} memories", "results": results,
            "consistency_token": token}
