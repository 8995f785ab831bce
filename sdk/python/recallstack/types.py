"""Typed results that are also the plain dicts mem0 returns.

Why both: a mem0 user's code indexes dicts (`client.search(...)["results"][0]["memory"]`,
`json.dumps(result)`), and new code wants attributes with types
(`client.search(...).results[0].created_at`). Every result here is a `dict` subclass
holding the API's JSON as is (so indexing, `json.dumps`, `==` with a dict and pickling
behave exactly like mem0's dicts) with typed, read-only attributes on top: timestamps
parsed to aware `datetime`s, nested objects as their own typed records (which are dicts
too). One rule everywhere: `result[key]` is the JSON value (strings for times),
`result.attribute` is the typed value.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


def _datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class _Field(Generic[T]):
    """A typed, read-only view of one key of the record's JSON."""

    def __init__(self, key: str | None = None, convert: Callable[[Any], T] | None = None, default: Any = None):
        self.key, self.convert, self.default = key, convert, default

    def __set_name__(self, owner, name: str) -> None:
        self.key = self.key or name

    @overload
    def __get__(self, obj: None, owner: type) -> "_Field[T]": ...

    @overload
    def __get__(self, obj: "Record", owner: type) -> T: ...

    def __get__(self, obj, owner):
        if obj is None:
            return self
        value = dict.get(obj, self.key)
        if value is None:  # a fresh empty container each time: callers may mutate what they get
            return type(self.default)() if isinstance(self.default, (dict, list)) else self.default
        return self.convert(value) if self.convert is not None else value


class Record(dict):
    """A JSON object of the API: a dict, with typed attributes declared by subclasses."""

    _nested: dict[str, type["Record"]] = {}  # key -> record type of a nested object or list of objects

    def __init__(self, data: Any = (), **extra: Any):
        super().__init__(data, **extra)
        for key, kind in self._nested.items():
            value = dict.get(self, key)
            if isinstance(value, list):
                self[key] = [kind(v) if isinstance(v, dict) and not isinstance(v, kind) else v for v in value]
            elif isinstance(value, dict) and not isinstance(value, kind):
                self[key] = kind(value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"

    def to_dict(self) -> dict[str, Any]:
        """A plain-dict deep copy (records inside become plain dicts too)."""
        def plain(value):
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list):
                return [plain(v) for v in value]
            return value
        return plain(self)


class Memory(Record):
    """One memory as the query API returns it (search adds `score`, `similarity`, `ranks`)."""

    id = _Field[str]()
    memory = _Field[str]()
    user_id = _Field[str]()
    agent_id = _Field["str | None"]()
    run_id = _Field["str | None"]()
    app_id = _Field["str | None"]()
    metadata = _Field[dict](default={})
    categories = _Field[list](default=[])
    importance = _Field["float | None"]()
    state = _Field["str | None"]()
    created_at = _Field["datetime | None"](convert=_datetime)
    updated_at = _Field["datetime | None"](convert=_datetime)
    occurred_at = _Field["datetime | None"](convert=_datetime)
    last_accessed_at = _Field["datetime | None"](convert=_datetime)
    version = _Field["int | None"]()
    access_count = _Field["int | None"]()
    expires_at = _Field["datetime | None"](convert=_datetime)  # when it stops being true (None: never)
    expired = _Field[bool](default=False)  # its expires_at has passed (a get or include_expired shows it)
    score = _Field["float | None"]()         # search: fused relevance in [0, 1]
    similarity = _Field["float | None"]()    # search: cosine similarity to the query
    ranks = _Field[dict](default={})         # search: rank in each source that found it
    rerank_score = _Field["float | None"]()  # search with rerank: the cross-encoder's score (the order)

    @property
    def text(self) -> str:
        """The memory's text (mem0 calls it `memory`)."""
        return self.memory


class WriteEvent(Record):
    """One memory a write touched: `event` is ADD, UPDATE or DELETE; `status` "processing"
    until the read models apply it (read-your-writes makes the client's next read wait)."""

    id = _Field[str]()
    memory = _Field["str | None"]()
    event = _Field[str]()
    status = _Field["str | None"]()


class WriteResult(Record):
    """What add, update, delete and delete_all return (202 Accepted): `results` (the memories
    touched; empty for a queued conversation or a delete_all) and the `consistency_token`."""

    _nested = {"results": WriteEvent}
    results = _Field["list[WriteEvent]"](default=[])
    consistency_token = _Field["str | None"]()
    conversation_id = _Field["str | None"]()  # add with infer=True: the queued conversation
    status = _Field["str | None"]()           # "queued" (infer) / "processing" (delete_all)
    event = _Field["str | None"]()            # "DELETE_ALL" for delete_all
    scope = _Field[dict](default={})          # delete_all: the scope deleted

    @property
    def ids(self) -> list[str]:
        return [event.id for event in self.results]


class SearchResult(Record):
    """`results` best first; `degraded` names search sources left out (and why)."""

    _nested = {"results": Memory}
    results = _Field["list[Memory]"](default=[])
    degraded = _Field[list](default=[])
    cache = _Field["str | None"]()
    explain = _Field["dict | None"]()
    timings_ms = _Field["dict | None"]()


class MemoryPage(Record):
    """A page of `get_all`: `results`, `page` (1-based), `page_size`, `total`, `has_more`."""

    _nested = {"results": Memory}
    results = _Field["list[Memory]"](default=[])
    page = _Field[int](default=1)
    page_size = _Field["int | None"]()
    total = _Field["int | None"]()
    has_more = _Field[bool](default=False)


class HistoryEntry(Record):
    """One change of a memory, from the log: `event` (MemoryCreated, MemoryUpdated, ...),
    `before` / `after` ({memory, metadata} or None), `at`, `actor`, `log_position`."""

    event_id = _Field[str]()
    event = _Field[str]()
    actor = _Field["str | None"]()
    correlation_id = _Field["str | None"]()
    at = _Field["datetime | None"](convert=_datetime)
    before = _Field["dict | None"]()
    after = _Field["dict | None"]()
    reason = _Field["str | None"]()
    log_position = _Field["dict | None"]()

    @property
    def old_memory(self) -> str | None:
        """mem0's name for the text before the change."""
        return (self.before or {}).get("memory")

    @property
    def new_memory(self) -> str | None:
        """mem0's name for the text after the change."""
        return (self.after or {}).get("memory")


class Context(Record):
    """A ready-to-inject context block: `context` (the text), `tokens` it costs (exact,
    counted with `encoding`), the `memories` in it, how many were `omitted` for the budget."""

    _nested = {"memories": Memory}
    context = _Field[str](default="")
    tokens = _Field[int](default=0)
    max_tokens = _Field["int | None"]()
    encoding = _Field["str | None"]()
    memories = _Field["list[Memory]"](default=[])
    omitted = _Field[int](default=0)
    degraded = _Field[list](default=[])

    @property
    def text(self) -> str:
        return self.context

    def __str__(self) -> str:
        return self.context


class Profile(Record):
    """A user's profile (GET /v1/users/{id}/profile): `profile` maps each section (preferences,
    facts, projects, tools, people, instructions) to items `{text, memory_ids}` (the memories it
    came from). `version` (0: built on read, none appended yet), `updated_at`, `built_from` (the
    consistency token of the last memory change it reflects), `builder` (offline or llm:<model>),
    `stale` (memories changed since: the consolidation worker's next pass refreshes it)."""

    user_id = _Field[str](default="")
    version = _Field[int](default=0)
    updated_at = _Field["datetime | None"](convert=_datetime)
    built_from = _Field["str | None"]()
    builder = _Field[str](default="")
    memory_count = _Field[int](default=0)
    stale = _Field[bool](default=False)
    profile = _Field[dict](default={})

    def section(self, name: str) -> list[dict[str, Any]]:
        """The items of one section (an empty list for a section it does not have)."""
        return list(self.profile.get(name) or [])
