"""The Postgres read model's memory reads as the read use cases' port (application/reads.py
MemoryReads): pg_reads' functions on the query API's pool."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from query_api import pg_reads
from query_api.pg_reads import Scope


class PgMemoryReads:
    def __init__(self, pool: Callable[[], asyncpg.Pool]):
        self.pool = pool  # a callable: the pool is made in the app's lifespan

    async def list_memories(self, scope: Scope, sort: str, descending: bool, limit: int, offset: int,
                            with_vectors: bool = False) -> tuple[list[dict], int]:
        return await pg_reads.list_memories(self.pool(), scope, sort, descending, limit, offset,
                                            with_vectors=with_vectors)

    async def get_memory(self, memory_id: str, user_id: str) -> dict | None:
        return await pg_reads.get_memory(self.pool(), memory_id, user_id)

    async def get_shared_memory(self, memory_id: str, grantee_user_id: str) -> dict | None:
        return await pg_reads.get_shared_memory(self.pool(), memory_id, grantee_user_id)

    async def history(self, memory_id: str, user_id: str) -> list[dict] | None:
        return await pg_reads.history(self.pool(), memory_id, user_id)
