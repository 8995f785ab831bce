"""The read use cases of single memories and lists: list, get, history. No HTTP here.

Each read first waits (bounded) until Postgres applied the request's consistency token
(application/freshness.py), then reads the Postgres read model through its circuit breaker.
Getting a memory is a recall (a MemoryAccessed is recorded); listing is browsing (none), and
a grantee's read of a memory shared with it is not its owner's recall (none either).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from application.freshness import Consistency, PostgresGuard
from application.search import AccessLog, NoAccessLog


class MemoryReads(Protocol):
    """The Postgres read model's memory reads (query_api/memory_reads.py)."""

    async def list_memories(self, scope: Any, sort: str, descending: bool, limit: int, offset: int,
                            with_vectors: bool = False) -> tuple[list[dict], int]: ...

    async def get_memory(self, memory_id: str, user_id: str) -> dict | None: ...

    async def get_shared_memory(self, memory_id: str, grantee_user_id: str) -> dict | None: ...

    async def history(self, memory_id: str, user_id: str) -> list[dict] | None: ...


class MemoryNotFound(Exception):
    """Absent, deleted or someone else's: the same answer (no existence leak)."""

    def __init__(self, memory_id: str):
        super().__init__(f"memory {memory_id} not found")
        self.memory_id = memory_id


@dataclass(frozen=True)
class ListMemories:
    scope: Any  # the read model's Scope (state included)
    sort: str = "created_at"
    descending: bool = True
    page: int = 1
    page_size: int = 100
    with_vectors: bool = False
    consistency_token: str | None = None


@dataclass
class Reading:
    """The list, get and history use cases and the ports they need."""
    reads: MemoryReads
    consistency: Consistency
    postgres: PostgresGuard
    access: AccessLog = field(default_factory=NoAccessLog)

    async def list_memories(self, query: ListMemories) -> dict:
        await self.consistency.postgres_applied(query.consistency_token, self.postgres)
        rows, total = await self.postgres.read(self.reads.list_memories(
            query.scope, query.sort, query.descending, query.page_size, (query.page - 1) * query.page_size,
            with_vectors=query.with_vectors))
        return {"results": rows, "page": query.page, "page_size": query.page_size, "total": total,
                "has_more": query.page * query.page_size < total}

    async def get_memory(self, memory_id: str, user_id: str, consistency_token: str | None = None) -> dict:
        """The user's memory, or one someone shared with the user (read-only); MemoryNotFound."""
        await self.consistency.postgres_applied(consistency_token, self.postgres)
        doc = await self.postgres.read(self.reads.get_memory(memory_id.lower(), user_id))
        if doc is None:
            doc = await self.postgres.read(self.reads.get_shared_memory(memory_id.lower(), user_id))
            if doc is None:
                raise MemoryNotFound(memory_id)
            return doc  # a grantee's read is not the owner's recall: no access event
        self.access.record(user_id, [doc["id"]], "get")
        return doc

    async def memory_history(self, memory_id: str, user_id: str, consistency_token: str | None = None) -> dict:
        """Every change of the user's memory, oldest first; MemoryNotFound."""
        await self.consistency.postgres_applied(consistency_token, self.postgres)
        changes = await self.postgres.read(self.reads.history(memory_id.lower(), user_id))
        if changes is None:
            raise MemoryNotFound(memory_id)
        return {"memory_id": memory_id.lower(), "history": changes}
