"""CrewAI integration: recallstack as the storage of crewai's `Memory`
(`pip install "recallstack-sdk[crewai]"`, crewai 1.x).

    from crewai import Agent, Crew
    from recallstack import Client
    from recallstack.integrations.crewai import recallstack_memory

    memory = recallstack_memory(Client(), user_id="alice", llm=my_llm)   # a crewai Memory
    memory.remember("Alice prefers dark mode", scope="/preferences", categories=["ui"], importance=0.7)
    matches = memory.recall("which theme does alice like?", depth="shallow")
    crew = Crew(agents=[...], tasks=[...], memory=memory)

crewai 1.x replaced ExternalMemory by one `Memory` whose storage is pluggable: any object
with the methods of `crewai.memory.storage.backend.StorageBackend`. `RecallstackStorage` is
one. That protocol searches by vector: crewai embeds the query first. recallstack embeds on
its own side and searches by text (hybrid: dense, keyword, time, graph), so the storage
comes with `QueryTexts`, the embedder crewai is given: each text gets a stable vector that
maps back to the text, and the storage sends recallstack the text.

How crewai's record maps onto a memory: content is the text; categories, importance and
created_at (as occurred_at) are the memory's own; the scope path, the record id, source and
private flag go in metadata (`crewai_scope`, `crewai_scopes` (the path and its ancestors, for
prefix filters), `crewai_id`, `crewai_source`, `crewai_private`) beside the record's metadata.
The user's other memories (written through MCP, the SDK...) are at the root scope "/".
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import threading
import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

from crewai.memory.types import MemoryRecord, ScopeInfo

from recallstack.client import Client
from recallstack.errors import NotFound
from recallstack.types import Memory

__all__ = ["RecallstackStorage", "QueryTexts", "recallstack_memory"]

_PAGE = 1000          # the list endpoint's largest page
_SCAN_LIMIT = 10_000  # scope statistics look at this many memories at most
_OWN_KEYS = ("crewai_scope", "crewai_scopes", "crewai_id", "crewai_source", "crewai_private")


class QueryTexts:
    """The embedder to give crewai's `Memory` with a `RecallstackStorage`: a 64-dimension unit
    vector from each text's hash (equal texts, equal vectors; different texts far apart, so
    crewai's in-batch de-duplication keeps them), remembered so the storage can find the
    text a vector came from. Not a semantic embedding: recallstack does the semantics."""

    def __init__(self, capacity: int = 4096):
        self.capacity = capacity
        self._texts: OrderedDict[tuple[float, ...], str] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, input: list[str]) -> list[list[float]]:  # noqa: A002 (chromadb's name)
        vectors = []
        for text in input:
            digest = hashlib.sha512(text.encode()).digest()
            raw = [b - 127.5 for b in digest]
            norm = math.sqrt(sum(x * x for x in raw))
            vector = [x / norm for x in raw]
            with self._lock:
                self._texts[tuple(vector)] = text
                self._texts.move_to_end(tuple(vector))
                while len(self._texts) > self.capacity:
                    self._texts.popitem(last=False)
            vectors.append(vector)
        return vectors

    def text_of(self, vector: list[float]) -> str | None:
        with self._lock:
            return self._texts.get(tuple(float(x) for x in vector))


def _scope(path: str | None) -> str:
    """A scope path normalised as crewai writes them: '/a/b', the root '/'."""
    return "/" + "/".join(part for part in (path or "").split("/") if part)


def _ancestors(path: str) -> list[str]:
    parts = [part for part in path.split("/") if part]
    return ["/"] + ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _naive_utc(value: datetime | None) -> datetime:
    """crewai compares with datetime.utcnow(): naive UTC."""
    if value is None:
        return datetime.utcnow()
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


class RecallstackStorage:
    """A crewai memory `StorageBackend` over one user's recallstack memories (`user_id`;
    default: the client's, else the API key's user; `app_id` narrows them to one app).
    Build `Memory(storage=s, embedder=s.embedder, llm=...)`, or use `recallstack_memory`."""

    def __init__(self, client: Client | None = None, *, user_id: str | None = None, app_id: str | None = None,
                 agent_id: str | None = None, embedder: QueryTexts | None = None):
        self.client = client or Client()
        self.user_id, self.app_id, self.agent_id = user_id, app_id, agent_id
        self.embedder = embedder or QueryTexts()

    # writes -------------------------------------------------------------------------------------
    def save(self, records: list[MemoryRecord]) -> None:
        for record in records:
            self.client.add(record.content, user_id=self.user_id, agent_id=self.agent_id, app_id=self.app_id,
                            metadata=self._metadata(record), categories=list(record.categories),
                            importance=record.importance, occurred_at=record.created_at.replace(
                                tzinfo=record.created_at.tzinfo or timezone.utc), infer=False)

    def update(self, record: MemoryRecord) -> None:
        memory = self._one(record.id)
        if memory is None:
            raise NotFound(f"no recallstack memory for crewai record {record.id}", status=404, code="not_found")
        self.client.update(memory.id, record.content, user_id=self.user_id, metadata=self._metadata(record),
                           categories=list(record.categories), importance=record.importance)

    def delete(self, scope_prefix: str | None = None, categories: list[str] | None = None,
               record_ids: list[str] | None = None, older_than: datetime | None = None,
               metadata_filter: dict[str, Any] | None = None) -> int:
        if record_ids is not None and not record_ids:
            return 0
        conditions = self._conditions(scope_prefix, categories, metadata_filter)
        if record_ids:
            conditions.append(self._id_condition(record_ids))
        if older_than is not None:
            at = older_than if older_than.tzinfo else older_than.replace(tzinfo=timezone.utc)
            conditions.append({"created_at": {"lt": at.isoformat()}})
        doomed = self._list(conditions)
        for memory in doomed:
            self.client.delete(memory.id, user_id=self.user_id)
        return len(doomed)

    def reset(self, scope_prefix: str | None = None) -> None:
        """Delete the memories of a scope; without one, all of the user's (of `app_id` if set)."""
        if _scope(scope_prefix) == "/":
            self.client.delete_all(user_id=self.user_id, app_id=self.app_id)
        else:
            self.delete(scope_prefix=scope_prefix)

    # reads --------------------------------------------------------------------------------------
    def search(self, query_embedding: list[float], scope_prefix: str | None = None,
               categories: list[str] | None = None, metadata_filter: dict[str, Any] | None = None,
               limit: int = 10, min_score: float = 0.0) -> list[tuple[MemoryRecord, float]]:
        query = self.embedder.text_of(query_embedding)
        if query is None:
            raise ValueError("RecallstackStorage searches by text: give crewai's Memory embedder=storage.embedder "
                             "(recallstack_memory does), so the storage knows the text of a query vector")
        conditions = self._conditions(scope_prefix, categories, metadata_filter)
        found = self.client.search(query, user_id=self.user_id, agent_id=self.agent_id, app_id=self.app_id,
                                   filters=_all(conditions), limit=max(1, min(limit, 100)),
                                   threshold=min_score if min_score > 0 else None)
        return [(self._record(m), m.similarity if m.similarity is not None else m.score or 0.0)
                for m in found.results]

    def get_record(self, record_id: str) -> MemoryRecord | None:
        memory = self._one(record_id)
        return self._record(memory) if memory is not None else None

    def list_records(self, scope_prefix: str | None = None, limit: int = 200, offset: int = 0) -> list[MemoryRecord]:
        memories = self._list(self._conditions(scope_prefix), at_most=offset + limit)
        return [self._record(m) for m in memories[offset:offset + limit]]

    def count(self, scope_prefix: str | None = None) -> int:
        page = self.client.get_all(user_id=self.user_id, agent_id=self.agent_id, app_id=self.app_id,
                                   filters=_all(self._conditions(scope_prefix)), page_size=1)
        return page.total or 0

    def get_scope_info(self, scope: str) -> ScopeInfo:
        path = _scope(scope)
        records = [self._record(m) for m in self._list(self._conditions(path), at_most=_SCAN_LIMIT)]
        return ScopeInfo(path=path, record_count=self.count(path),
                         categories=sorted({c for r in records for c in r.categories}),
                         oldest_record=min((r.created_at for r in records), default=None),
                         newest_record=max((r.created_at for r in records), default=None),
                         child_scopes=_children(path, records))

    def list_scopes(self, parent: str = "/") -> list[str]:
        path = _scope(parent)
        return _children(path, [self._record(m) for m in self._list(self._conditions(path), at_most=_SCAN_LIMIT)])

    def list_categories(self, scope_prefix: str | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for memory in self._list(self._conditions(scope_prefix), at_most=_SCAN_LIMIT):
            for category in memory.categories:
                counts[category] = counts.get(category, 0) + 1
        return counts

    def close(self) -> None:
        """The client belongs to the caller: nothing to close here."""

    # async variants: the same calls in a thread (the client is thread-safe) -----------------------
    async def asave(self, records: list[MemoryRecord]) -> None:
        await asyncio.to_thread(self.save, records)

    async def asearch(self, query_embedding: list[float], scope_prefix: str | None = None,
                      categories: list[str] | None = None, metadata_filter: dict[str, Any] | None = None,
                      limit: int = 10, min_score: float = 0.0) -> list[tuple[MemoryRecord, float]]:
        return await asyncio.to_thread(self.search, query_embedding, scope_prefix, categories, metadata_filter,
                                       limit, min_score)

    async def adelete(self, scope_prefix: str | None = None, categories: list[str] | None = None,
                      record_ids: list[str] | None = None, older_than: datetime | None = None,
                      metadata_filter: dict[str, Any] | None = None) -> int:
        return await asyncio.to_thread(self.delete, scope_prefix, categories, record_ids, older_than, metadata_filter)

    # mapping ------------------------------------------------------------------------------------
    @staticmethod
    def _metadata(record: MemoryRecord) -> dict[str, Any]:
        scope = _scope(record.scope)
        own = {"crewai_scope": scope, "crewai_scopes": _ancestors(scope), "crewai_id": record.id,
               "crewai_private": record.private}
        if record.source is not None:
            own["crewai_source"] = record.source
        return {**json.loads(json.dumps(record.metadata, default=str)), **own}

    @staticmethod
    def _record(memory: Memory) -> MemoryRecord:
        metadata = memory.metadata
        return MemoryRecord(id=metadata.get("crewai_id") or memory.id, content=memory.memory,
                            scope=metadata.get("crewai_scope") or "/", categories=memory.categories,
                            metadata={k: v for k, v in metadata.items() if k not in _OWN_KEYS},
                            importance=min(1.0, max(0.0, memory.importance if memory.importance is not None else 0.5)),
                            created_at=_naive_utc(memory.occurred_at or memory.created_at),
                            last_accessed=_naive_utc(memory.last_accessed_at or memory.updated_at),
                            source=metadata.get("crewai_source"), private=bool(metadata.get("crewai_private")))

    @staticmethod
    def _conditions(scope_prefix: str | None, categories: list[str] | None = None,
                    metadata_filter: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        conditions: list[dict[str, Any]] = []
        scope = _scope(scope_prefix)
        if scope != "/":
            conditions.append({"metadata": {"crewai_scopes": {"contains": scope}}})
        if categories:
            conditions.append({"categories": {"in": list(categories)}})
        if metadata_filter:
            conditions.append({"metadata": dict(metadata_filter)})
        return conditions

    @staticmethod
    def _id_condition(ids: list[str]) -> dict[str, Any]:
        """A record id is crewai's (in metadata) or, for a memory crewai did not write, the memory's."""
        own = {"metadata": {"crewai_id": {"in": list(ids)}}}
        memory_ids = [i for i in ids if _is_uuid(i)]
        return {"OR": [own, {"memory_id": {"in": memory_ids}}]} if memory_ids else own

    def _one(self, record_id: str) -> Memory | None:
        if _is_uuid(record_id):
            try:  # most records crewai names come from a search: the memory's own id
                memory = self.client.get(record_id, user_id=self.user_id)
                if memory.metadata.get("crewai_id") in (None, record_id):
                    return memory
            except NotFound:
                pass
        found = self._list([{"metadata": {"crewai_id": record_id}}], at_most=1)
        return found[0] if found else None

    def _list(self, conditions: list[dict[str, Any]], at_most: int | None = None) -> list[Memory]:
        """The memories matching, newest first (at most `at_most`)."""
        found: list[Memory] = []
        page = 1
        while at_most is None or len(found) < at_most:
            got = self.client.get_all(user_id=self.user_id, agent_id=self.agent_id, app_id=self.app_id,
                                      filters=_all(conditions), page=page, page_size=_PAGE, sort="created_at",
                                      order="desc")
            found.extend(got.results)
            if not got.has_more:
                break
            page += 1
        return found if at_most is None else found[:at_most]


def _all(conditions: list[dict[str, Any]]) -> dict[str, Any] | None:
    return {"AND": conditions} if conditions else None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def _children(path: str, records: list[MemoryRecord]) -> list[str]:
    prefix = path.rstrip("/") + "/"
    children = set()
    for record in records:
        scope = _scope(record.scope)
        if scope.startswith(prefix) and scope != path:
            children.add(prefix + scope[len(prefix):].split("/", 1)[0])
    return sorted(children)


def recallstack_memory(client: Client | None = None, *, user_id: str | None = None, app_id: str | None = None,
                       agent_id: str | None = None, **memory_options: Any):
    """A crewai `Memory` stored in recallstack: `Memory(storage=RecallstackStorage(...),
    embedder=<its QueryTexts>, **memory_options)` (llm=..., root_scope=..., weights...)."""
    from crewai.memory.unified_memory import Memory as CrewMemory

    storage = RecallstackStorage(client, user_id=user_id, app_id=app_id, agent_id=agent_id)
    return CrewMemory(storage=storage, embedder=storage.embedder, **memory_options)
