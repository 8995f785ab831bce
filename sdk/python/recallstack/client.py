"""`Client` (sync) and `AsyncClient`: the recallstack REST API with mem0's method names.

Both have the same methods with the same arguments (AsyncClient's are coroutines), built
from one set of request builders below, so the two cannot drift apart. Each call:
1. builds its request once (an Idempotency-Key for writes, the user's latest consistency
   token for reads);
2. sends it, retrying per the `RetryPolicy` (see recallstack/retry.py): 429/502/503/504
   and connection failures, honouring Retry-After, with the same key and bytes each time;
3. remembers the consistency token of a successful write for that user (read-your-writes),
   and returns a typed result (recallstack/types.py) or raises a `RecallstackError`.
Every call sends one X-Request-ID (the same on each retry, unless the caller set its own in
`headers`): the API uses it as the log lines' and the events' correlation id, and errors carry
it as `request_id`, so a failure can be found in the server's logs.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Literal
from urllib.parse import quote

import httpx

from recallstack.consistency import TokenStore, merge
from recallstack.core_memory import CoreMemoryRequests
from recallstack.errors import InvalidRequest, Unavailable, error_for
from recallstack.expiry import UNSET, expiry_body
from recallstack.ids import id_arg, optional_id, uuid_arg
from recallstack.retry import RetryPolicy, RetryState, retry_after_seconds
from recallstack.types import Context, HistoryEntry, Memory, MemoryPage, Profile, SearchResult, WriteResult

__all__ = ["Client", "AsyncClient", "DEFAULT_URL"]

VERSION = "0.1.0"
DEFAULT_URL = "http://127.0.0.1:8080"
ENV_URL, ENV_API_KEY = "RECALLSTACK_URL", "RECALLSTACK_API_KEY"
Consistency = Literal["read_your_writes", "eventual"]

# mem0 arguments that change nothing here (recallstack answers one shape, always
# asynchronously, with the graph always on): accepted so mem0 code runs unchanged.
MEM0_IGNORED = frozenset({"version", "output_format", "async_mode", "org_id", "project_id", "enable_graph"})
# The query API's extra search knobs, passed through as given (see the README).
SEARCH_OPTIONS = frozenset({"sources", "weights", "rrf_k", "mmr", "temporal", "cache", "include_shared"})

_sleep = time.sleep              # module-level so the unit tests can replace them
_async_sleep = asyncio.sleep


@dataclass
class _Call:
    """One logical request: built once, sent (and retried) as is."""

    method: str
    path: str
    parse: Callable[[Any], Any]
    params: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    user_id: str | None = None
    write: bool = False
    idempotency_key: str | None = None
    token_in: Literal["body", "query", "header"] | None = None  # where a read-your-writes token goes
    token: str | None = None                                    # one the caller passed explicitly

    def __post_init__(self):
        # A call without a user_id (an API key's own user) sends none: the server fills it in.
        self.params = _clean(self.params)
        if self.body is not None and self.body.get("user_id", "") is None:
            self.body = _clean(self.body)


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _iso(value: datetime | str | int | float | None) -> str | None:
    """datetime, ISO string or Unix seconds (mem0's `timestamp`) -> ISO 8601."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise InvalidRequest("occurred_at: a datetime, an ISO 8601 string or Unix seconds", code="invalid_request",
                             details={"field": "occurred_at"})
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc).isoformat()
    if isinstance(value, datetime):
        return value.isoformat()
    raise InvalidRequest(f"occurred_at: expected a datetime, an ISO 8601 string or Unix seconds, got "
                         f"{type(value).__name__}", code="invalid_request", details={"field": "occurred_at"})


def _memory_path(memory_id: str, suffix: str = "") -> str:
    """/v1/memories/<uuid><suffix>: the id checked as a UUID and percent-encoded as one path
    segment (never a raw value concatenated into a path), the suffix a constant of ours."""
    return f"/v1/memories/{quote(uuid_arg(memory_id, 'memory_id'), safe='')}{suffix}"


def _scope(agent_id: str | None, run_id: str | None, app_id: str | None) -> dict[str, str | None]:
    """The optional scope ids of a call, each checked as an id."""
    return {"agent_id": optional_id(agent_id, "agent_id"), "run_id": optional_id(run_id, "run_id"),
            "app_id": optional_id(app_id, "app_id")}


def _refuse_unknown(method: str, kwargs: dict[str, Any], allowed: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Drop mem0's no-op arguments; keep `allowed` ones; refuse the rest like Python would."""
    kept = {}
    for key, value in kwargs.items():
        if key in allowed:
            kept[key] = value
        elif key not in MEM0_IGNORED:
            raise TypeError(f"{method}() got an unexpected keyword argument {key!r}")
    return kept


def _lift_user(filters: dict[str, Any] | None, user_id: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """mem0's v2 calls name the user inside `filters` ({"user_id": ...} or an AND member);
    the API takes it as a field: move it there."""
    if not filters:
        return filters, user_id
    if not isinstance(filters, dict):
        raise InvalidRequest("filters: a JSON object (mem0's v2 filter shape)", code="invalid_request",
                             details={"field": "filters"})
    rest = dict(filters)
    found = []
    if isinstance(rest.get("user_id"), str):
        found.append(rest.pop("user_id"))
    if isinstance(rest.get("AND"), list):
        kept = []
        for item in rest["AND"]:
            if isinstance(item, dict) and list(item) == ["user_id"] and isinstance(item["user_id"], str):
                found.append(item["user_id"])
            else:
                kept.append(item)
        if kept:
            rest["AND"] = kept
        else:
            rest.pop("AND")
    for named in found:
        if user_id is not None and named != user_id:
            raise InvalidRequest(f"filters: user_id {named!r} differs from user_id {user_id!r}",
                                 code="invalid_request", details={"field": "filters.user_id"})
        user_id = named
    return (rest or None), user_id


class _Requests(CoreMemoryRequests):
    """The request builders, one per public method; `Client` and `AsyncClient` send them.

    Each builder has the public signature and docstring of its method and returns the
    `_Call` to send (the return annotation is what the public method returns)."""

    user_id: str | None

    def _user(self, user_id: str | None) -> str | None:
        """The user a call names; None (the API key's own user, filled in by the server)
        when neither the call nor the client names one and an API key is set."""
        user_id = user_id if user_id is not None else self.user_id
        if not user_id:
            if getattr(self, "api_key", None):
                return None
            raise InvalidRequest("user_id is required (pass user_id=..., Client(user_id=...) as a default, or an "
                                 "api_key whose user is meant)", code="invalid_request", details={"field": "user_id"})
        return id_arg(user_id, "user_id")

    def add(self, messages: str | dict[str, Any] | list[dict[str, Any]], *, user_id: str | None = None,
            agent_id: str | None = None, run_id: str | None = None, app_id: str | None = None,
            metadata: dict[str, Any] | None = None, infer: bool | None = None, categories: list[str] | None = None,
            occurred_at: datetime | str | int | float | None = None, importance: float | None = None,
            timestamp: int | float | datetime | str | None = None, idempotency_key: str | None = None,
            expires_at: datetime | str | None = None, ttl_seconds: int | None = None,
            expiration_date: date | str | None = None, **mem0_options: Any) -> WriteResult:
        """Store a memory (a text) or the memories in a conversation (a list of {role, content}).

        As mem0: `messages` is a string, one message dict or a list of them. A string is
        stored as one memory as given (with `infer=True` it is sent as a user message to
        extract facts from, as mem0 does). Messages are stored one memory per user or
        assistant message when `infer` is false (the server default until an extractor LLM
        is configured), or queued for fact extraction when `infer` is true. `occurred_at`
        (or mem0's `timestamp`, Unix seconds) is when the remembered thing happened.
        `expires_at` (or `ttl_seconds`, or mem0's `expiration_date`, an inclusive YYYY-MM-DD
        date) is when it stops being true: from then on reads leave it out.

        Returns a `WriteResult`: `results` [{id, memory, event: "ADD", status}] and the
        `consistency_token` (remembered: this client's next reads for the user see it). A
        retried add is applied once: the Idempotency-Key (a fresh UUID unless given) is the
        same on every try.
        """
        _refuse_unknown("add", mem0_options)
        user_id = self._user(user_id)
        if occurred_at is not None and timestamp is not None:
            raise InvalidRequest("give occurred_at or timestamp, not both", code="invalid_request",
                                 details={"field": "timestamp"})
        body: dict[str, Any] = {"user_id": user_id}
        if isinstance(messages, str):
            if infer:
                body["messages"] = [{"role": "user", "content": messages}]
            else:
                body["text"] = messages
        elif isinstance(messages, dict):
            body["messages"] = [messages]
        elif isinstance(messages, (list, tuple)) and all(isinstance(m, dict) for m in messages):
            body["messages"] = list(messages)
        else:
            raise InvalidRequest("messages: a string, a message dict {role, content}, or a list of message dicts",
                                 code="invalid_request", details={"field": "messages"})
        body.update(_clean({**_scope(agent_id, run_id, app_id), "metadata": metadata,
                            "categories": categories, "importance": importance, "infer": infer,
                            "occurred_at": _iso(occurred_at if occurred_at is not None else timestamp)}))
        body.update(expiry_body(UNSET if expires_at is None else expires_at, ttl_seconds,
                                UNSET if expiration_date is None else expiration_date))
        return _Call("POST", "/v1/memories", WriteResult, body=body, user_id=user_id, write=True,
                     idempotency_key=idempotency_key or str(uuid.uuid4()))  # type: ignore[return-value]

    def search(self, query: str, *, user_id: str | None = None, agent_id: str | None = None,
               run_id: str | None = None, app_id: str | None = None, filters: dict[str, Any] | None = None,
               limit: int | None = None, top_k: int | None = None, threshold: float | None = None,
               reference_time: datetime | str | None = None, include_archived: bool | None = None,
               explain: bool | None = None, consistency_token: str | None = None,
               as_of: datetime | str | None = None, rerank: bool | None = None, **options: Any) -> SearchResult:
        """Hybrid search (dense, keyword, time and graph, fused) over the user's memories.

        `limit` (mem0's `top_k` is the same; default 10, at most 100), `threshold` (minimum
        cosine similarity), `filters` in mem0's v2 shape (`{"AND": [{"metadata": {...}},
        {"occurred_at": {"gte": "2024-06-01"}}]}`; a `user_id` inside filters is used as the
        user, as mem0's v2 calls do), `reference_time` ('now' for "last week" in the query).
        Extra knobs of the query API pass through: sources, weights, rrf_k, mmr, temporal, cache,
        include_shared (also memories other users shared with this one, each with `shared`).

        Returns a `SearchResult`: `results` (typed `Memory` dicts with `score`, `similarity`,
        `ranks`) best first, and `degraded` (sources left out). Waits for this client's own
        earlier writes of the user (unless consistency="eventual").
        `as_of` (a datetime, an ISO 8601 time or a consistency token): the memories as they were at
        that moment, rebuilt from the log (docs/api.md, "As of a past moment"; no graph source).
        `rerank=True` (mem0's parameter): the best fused results reordered by the server's
        cross-encoder, each with `rerank_score`; a server without one raises InvalidRequest (code
        `rerank_not_configured`), one whose endpoint fails answers in fused order with `rerank` in
        `degraded`.
        """
        extra = _refuse_unknown("search", options, SEARCH_OPTIONS)
        if limit is not None and top_k is not None and limit != top_k:
            raise InvalidRequest("give limit or top_k (the same thing), not both", code="invalid_request",
                                 details={"field": "top_k"})
        filters, user_id = _lift_user(filters, user_id)
        user_id = self._user(user_id)
        body = _clean({"query": query, "user_id": user_id, **_scope(agent_id, run_id, app_id),
                       "filters": filters, "limit": limit if limit is not None else top_k,
                       "threshold": threshold, "reference_time": _iso(reference_time),
                       "include_archived": include_archived, "explain": explain, "rerank": rerank, **extra})
        if as_of is not None:
            body["as_of"] = _iso(as_of)
        return _Call("POST", "/v1/memories/search", SearchResult, body=body, user_id=user_id, token_in="body",
                     token=consistency_token)  # type: ignore[return-value]

    def get(self, memory_id: str, *, user_id: str | None = None, consistency_token: str | None = None,
            as_of: datetime | str | None = None) -> Memory:
        """One memory by id. Raises `NotFound` when it is absent, deleted or another user's
        (mem0's local `Memory.get` returns None instead); with `as_of`, as it was then."""
        user_id = self._user(user_id)
        return _Call("GET", _memory_path(memory_id), Memory, params=_clean({"user_id": user_id, "as_of": _iso(as_of)}),
                     user_id=user_id,
                     token_in="query", token=consistency_token)  # type: ignore[return-value]

    def get_all(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                app_id: str | None = None, filters: dict[str, Any] | None = None, page: int = 1,
                page_size: int = 100, limit: int | None = None, top_k: int | None = None, sort: str | None = None,
                order: Literal["asc", "desc"] | None = None, include_archived: bool | None = None,
                state: Literal["active", "archived", "forgotten", "any"] | None = None,
                as_of: datetime | str | None = None,
                consistency_token: str | None = None, include_expired: bool | None = None,
                **mem0_options: Any) -> MemoryPage:
        """The user's memories, newest first, a page at a time: `{results, page, page_size,
        total, has_more}`. `page` is 1-based; `page_size` 1-1,000 (mem0's `limit`/`top_k`
        set it too). `sort`: created_at (default), updated_at, occurred_at or importance.
        `state`: only memories in that state (forgotten ones can be `restore`d).
        `include_expired`: also memories whose `expires_at` has passed (`expired` is true)."""
        _refuse_unknown("get_all", mem0_options)
        filters, user_id = _lift_user(filters, user_id)
        user_id = self._user(user_id)
        size = next((v for v in (limit, top_k) if v is not None), page_size)
        # The scope travels in the filter tree (the same meaning): the list endpoint's run_id and
        # app_id query parameters are ignored by the query API as of this writing.
        scope = [{name: value} for name, value in _scope(agent_id, run_id, app_id).items() if value is not None]
        if scope:
            filters = {"AND": scope + ([filters] if filters else [])}
        params = _clean({"user_id": user_id, "filters": json.dumps(filters) if filters else None, "page": page,
                         "page_size": size,
                         "sort": sort, "order": order,
                         "include_archived": None if include_archived is None else str(include_archived).lower(),
                         "state": state,
                         "include_expired": None if include_expired is None else str(include_expired).lower()})
        if as_of is not None:  # the memories as they were then (docs/api.md, "As of a past moment")
            params["as_of"] = _iso(as_of)
        return _Call("GET", "/v1/memories", MemoryPage, params=params, user_id=user_id, token_in="query",
                     token=consistency_token)  # type: ignore[return-value]

    def update(self, memory_id: str, text: str | None = None, *, user_id: str | None = None,
               metadata: dict[str, Any] | None = None, categories: list[str] | None = None,
               importance: float | None = None, data: str | None = None,
               idempotency_key: str | None = None, expires_at: datetime | str | None = UNSET,
               ttl_seconds: int | None = None, expiration_date: date | str | None = UNSET) -> WriteResult:
        """Change a memory's text (re-embedded) and/or replace its metadata, categories or
        importance; what is not given stays. `data` is mem0's local-SDK name for `text`. A new
        `expires_at` / `ttl_seconds` / `expiration_date` moves the expiry; `expires_at=None` (or
        mem0's `expiration_date=None`) clears it.
        Raises `NotFound` for a memory that is not the user's. Sees this client's own
        earlier add of it (the consistency token travels as X-Consistency-Token)."""
        if text is not None and data is not None and text != data:
            raise InvalidRequest("give text or data (the same thing), not both", code="invalid_request",
                                 details={"field": "data"})
        user_id = self._user(user_id)
        body = _clean({"text": text if text is not None else data, "metadata": metadata, "categories": categories,
                       "importance": importance})
        body.update(expiry_body(expires_at, ttl_seconds, expiration_date))
        return _Call("PATCH", _memory_path(memory_id), WriteResult, params={"user_id": user_id}, body=body,
                     user_id=user_id, write=True, token_in="header",
                     idempotency_key=idempotency_key or str(uuid.uuid4()))  # type: ignore[return-value]

    def delete(self, memory_id: str, *, user_id: str | None = None,
               idempotency_key: str | None = None) -> WriteResult:
        """Delete one memory (its history stays in the log). Raises `NotFound` when it is not
        the user's or already deleted; a retry of the same call is answered from its key."""
        user_id = self._user(user_id)
        return _Call("DELETE", _memory_path(memory_id), WriteResult, params={"user_id": user_id}, user_id=user_id,
                     write=True, token_in="header",
                     idempotency_key=idempotency_key or str(uuid.uuid4()))  # type: ignore[return-value]

    def restore(self, memory_id: str, *, user_id: str | None = None,
                idempotency_key: str | None = None) -> WriteResult:
        """Make a forgotten (or archived) memory active again. Raises `NotFound` when it is
        not the user's, `Conflict` (409) when it is active."""
        user_id = self._user(user_id)
        return _Call("POST", _memory_path(memory_id, "/restore"), WriteResult, params={"user_id": user_id},
                     user_id=user_id, write=True, token_in="header",
                     idempotency_key=idempotency_key or str(uuid.uuid4()))  # type: ignore[return-value]

    def delete_all(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                   app_id: str | None = None, idempotency_key: str | None = None,
                   **mem0_options: Any) -> WriteResult:
        """Delete every memory of a scope: the user's, narrowed by agent_id / run_id / app_id.
        Applies to the memories written before it (per-user log order)."""
        _refuse_unknown("delete_all", mem0_options)
        user_id = self._user(user_id)
        params = _clean({"user_id": user_id, **_scope(agent_id, run_id, app_id)})
        return _Call("DELETE", "/v1/memories", WriteResult, params=params, user_id=user_id, write=True,
                     idempotency_key=idempotency_key or str(uuid.uuid4()))  # type: ignore[return-value]

    def history(self, memory_id: str, *, user_id: str | None = None,
                consistency_token: str | None = None) -> list[HistoryEntry]:
        """Every change of one memory, oldest first, read from the log: a list of
        `HistoryEntry` (event, before, after, at, actor, ...), as mem0 returns a list."""
        user_id = self._user(user_id)
        return _Call("GET", _memory_path(memory_id, "/history"),
                     lambda body: [HistoryEntry(e) for e in body.get("history", [])],
                     params={"user_id": user_id}, user_id=user_id, token_in="query",
                     token=consistency_token)  # type: ignore[return-value]

    def get_context(self, query: str, *, user_id: str | None = None, max_tokens: int = 1000,
                    agent_id: str | None = None, run_id: str | None = None, app_id: str | None = None,
                    filters: dict[str, Any] | None = None, encoding: str | None = None,
                    candidates: int | None = None, reference_time: datetime | str | None = None,
                    consistency_token: str | None = None, include_shared: bool | None = None,
                    as_of: datetime | str | None = None, rerank: bool | None = None) -> Context:
        """A ready-to-inject block of the memories most relevant to `query` that fits
        `max_tokens` (16-32,000, counted exactly with `encoding`: cl100k_base or
        o200k_base). Returns a `Context`: `context` (the text; also `str(ctx)`), `tokens`,
        `memories` in it, `omitted`. Not in mem0: its closest is search + your own formatting.
        `rerank=True`: the candidates reordered by the server's cross-encoder first (as in search)."""
        filters, user_id = _lift_user(filters, user_id)
        user_id = self._user(user_id)
        body = _clean({"query": query, "user_id": user_id, "max_tokens": max_tokens,
                       **_scope(agent_id, run_id, app_id), "filters": filters, "encoding": encoding,
                       "candidates": candidates, "reference_time": _iso(reference_time),
                       "include_shared": include_shared, "rerank": rerank})
        if as_of is not None:  # the context as it would have been then
            body["as_of"] = _iso(as_of)
        return _Call("POST", "/v1/context", Context, body=body, user_id=user_id, token_in="body",
                     token=consistency_token)  # type: ignore[return-value]

    def profile(self, user_id: str | None = None, *, consistency_token: str | None = None) -> Profile:
        """The user's profile (a `Profile`): preferences, facts, projects, tools, people and
        instructions drawn from their memories, each item with the memory ids it came from, and
        its `version`. Raises `NotFound` for a user without memories. Not in mem0's client
        (mem0's platform has user profiles; this is recallstack's)."""
        user_id = self._user(user_id)
        if user_id is None:
            raise InvalidRequest("profile needs the user_id (the path names it)", code="invalid_request",
                                 details={"field": "user_id"})
        return _Call("GET", f"/v1/users/{user_id}/profile", Profile, user_id=user_id, token_in="query",
                     token=consistency_token)  # type: ignore[return-value]


class _Base(_Requests):
    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, user_id: str | None = None,
                 host: str | None = None, timeout: float = 30.0, retry: RetryPolicy | None = None,
                 consistency: Consistency = "read_your_writes", headers: dict[str, str] | None = None):
        if consistency not in ("read_your_writes", "eventual"):
            raise ValueError("consistency: 'read_your_writes' or 'eventual'")
        self.base_url = (base_url or host or os.environ.get(ENV_URL) or DEFAULT_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get(ENV_API_KEY) or None
        self.user_id = user_id
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.consistency: Consistency = consistency
        self.tokens = TokenStore()
        self._headers = {"User-Agent": f"recallstack-python/{VERSION}", "Accept": "application/json",
                         **(headers or {})}
        self._owns_http = True

    def with_options(self, *, api_key: str | None = None, user_id: str | None = None,
                     retry: RetryPolicy | None = None, consistency: Consistency | None = None):
        """A client that shares this one's connections and consistency tokens, with other
        defaults (e.g. another API key per request of a multi-tenant server). Closing it
        leaves the connections to this client."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._owns_http = False
        if api_key is not None:
            clone.api_key = api_key
        if user_id is not None:
            clone.user_id = user_id
        if retry is not None:
            clone.retry = retry
        if consistency is not None:
            clone.consistency = consistency
        return clone

    def latest_token(self, user_id: str) -> str | None:
        """The consistency token this client will pass on the user's next read."""
        return self.tokens.get(user_id)

    def _prepare(self, call: _Call) -> tuple[dict[str, str], dict[str, Any], bytes | None]:
        headers = dict(self._headers)
        if not any(name.lower() == "x-request-id" for name in headers):
            headers["X-Request-ID"] = uuid.uuid4().hex
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if call.idempotency_key:
            headers["Idempotency-Key"] = call.idempotency_key
        params = dict(call.params)
        body = dict(call.body) if call.body is not None else None
        token = call.token
        if self.consistency == "read_your_writes" and call.token_in:
            remembered = self.tokens.get(call.user_id)
            token = merge(remembered, token) if token and remembered else (token or remembered)
        if token and call.token_in == "body" and body is not None:
            body["consistency_token"] = token
        elif token and call.token_in == "query":
            params["consistency_token"] = token
        elif token and call.token_in == "header":
            headers["X-Consistency-Token"] = token
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str).encode()
        return headers, params, content

    def _finish(self, call: _Call, state: RetryState, outcome: httpx.Response | BaseException,
                request_id: str | None = None) -> Any:
        url = f"{self.base_url}{call.path}"
        if isinstance(outcome, BaseException):
            why = f"; {state.gave_up}" if state.gave_up else ""
            raise Unavailable(f"could not reach recallstack at {self.base_url}: {type(outcome).__name__}: "
                              f"{outcome}{why}", attempts=state.attempts, method=call.method, url=url,
                              request_id=request_id) from outcome
        try:
            body = outcome.json() if outcome.content else {}
        except ValueError:
            body = None
        if outcome.is_success:
            if not isinstance(body, dict):
                raise error_for(outcome.status_code, None, text=f"not a JSON object: {outcome.text[:200]}",
                                attempts=state.attempts, method=call.method, url=url)
            if call.write and call.user_id:
                self.tokens.remember(call.user_id, body.get("consistency_token"))
            return call.parse(body)
        error = error_for(outcome.status_code, body, text=outcome.text,
                          retry_after=retry_after_seconds(outcome.headers.get("retry-after")),
                          attempts=state.attempts, method=call.method, url=url,
                          request_id=outcome.headers.get("x-request-id") or request_id)
        if state.gave_up:
            error.message = f"{error.message} ({state.gave_up})"
        raise error


def _request_id(headers: dict[str, str]) -> str | None:
    return next((value for name, value in headers.items() if name.lower() == "x-request-id"), None)


def _sync(build):
    @functools.wraps(build)
    def method(self, *args, **kwargs):
        return self._send(build(self, *args, **kwargs))
    return method


def _async(build):
    @functools.wraps(build)
    async def method(self, *args, **kwargs):
        return await self._send(build(self, *args, **kwargs))
    return method


class Client(_Base):
    """The synchronous client. `Client(base_url=None, api_key=None, *, user_id=None, timeout=30,
    retry=RetryPolicy(), consistency="read_your_writes", headers=None, transport=None)`.

    base_url defaults to $RECALLSTACK_URL, else http://127.0.0.1:8080 (mem0's `host=` works
    too); api_key to $RECALLSTACK_API_KEY, sent as `Authorization: Bearer`. `user_id` is
    the default user of every call. `consistency="eventual"` stops passing this client's
    consistency tokens (reads may then miss its latest writes for a moment). `transport`:
    an httpx transport (tests, proxies). Thread-safe; use as a context manager or `close()`.
    """

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, user_id: str | None = None,
                 host: str | None = None, timeout: float = 30.0, retry: RetryPolicy | None = None,
                 consistency: Consistency = "read_your_writes", headers: dict[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None):
        super().__init__(base_url, api_key, user_id=user_id, host=host, timeout=timeout, retry=retry,
                         consistency=consistency, headers=headers)
        self._http = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
                                  transport=transport)

    def _send(self, call: _Call) -> Any:
        headers, params, content = self._prepare(call)
        state = self.retry.start()
        while True:
            try:
                outcome: httpx.Response | BaseException = self._http.request(
                    call.method, call.path, params=params, headers=headers, content=content)
            except httpx.TransportError as exc:
                outcome = exc
            delay = state.next_delay(outcome)
            if delay is None:
                break
            _sleep(delay)
        return self._finish(call, state, outcome, _request_id(headers))

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    add = _sync(_Requests.add)
    search = _sync(_Requests.search)
    get = _sync(_Requests.get)
    get_all = _sync(_Requests.get_all)
    update = _sync(_Requests.update)
    delete = _sync(_Requests.delete)
    delete_all = _sync(_Requests.delete_all)
    restore = _sync(_Requests.restore)
    history = _sync(_Requests.history)
    get_context = _sync(_Requests.get_context)
    profile = _sync(_Requests.profile)
    core_memory_read = _sync(_Requests.core_memory_read)
    core_memory_list = _sync(_Requests.core_memory_list)
    core_memory_set = _sync(_Requests.core_memory_set)
    core_memory_append = _sync(_Requests.core_memory_append)
    core_memory_replace = _sync(_Requests.core_memory_replace)
    core_memory_delete = _sync(_Requests.core_memory_delete)
    core_memory_history = _sync(_Requests.core_memory_history)


class AsyncClient(_Base):
    """The asyncio client: the same constructor and methods as `Client`, each a coroutine.
    `transport` is an httpx async transport. Use `async with` or `await aclose()`."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *, user_id: str | None = None,
                 host: str | None = None, timeout: float = 30.0, retry: RetryPolicy | None = None,
                 consistency: Consistency = "read_your_writes", headers: dict[str, str] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None):
        super().__init__(base_url, api_key, user_id=user_id, host=host, timeout=timeout, retry=retry,
                         consistency=consistency, headers=headers)
        self._http = httpx.AsyncClient(base_url=self.base_url,
                                       timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)), transport=transport)

    async def _send(self, call: _Call) -> Any:
        headers, params, content = self._prepare(call)
        state = self.retry.start()
        while True:
            try:
                outcome: httpx.Response | BaseException = await self._http.request(
                    call.method, call.path, params=params, headers=headers, content=content)
            except httpx.TransportError as exc:
                outcome = exc
            delay = state.next_delay(outcome)
            if delay is None:
                break
            await _async_sleep(delay)
        return self._finish(call, state, outcome, _request_id(headers))

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    add = _async(_Requests.add)
    search = _async(_Requests.search)
    get = _async(_Requests.get)
    get_all = _async(_Requests.get_all)
    update = _async(_Requests.update)
    delete = _async(_Requests.delete)
    delete_all = _async(_Requests.delete_all)
    restore = _async(_Requests.restore)
    history = _async(_Requests.history)
    get_context = _async(_Requests.get_context)
    profile = _async(_Requests.profile)
    core_memory_read = _async(_Requests.core_memory_read)
    core_memory_list = _async(_Requests.core_memory_list)
    core_memory_set = _async(_Requests.core_memory_set)
    core_memory_append = _async(_Requests.core_memory_append)
    core_memory_replace = _async(_Requests.core_memory_replace)
    core_memory_delete = _async(_Requests.core_memory_delete)
    core_memory_history = _async(_Requests.core_memory_history)
