"""Memories from the Redis read model, for a search while Postgres is down.

The sparse index and the graph can rank without Postgres; what they rank still has to be
shown. Redis holds every memory's document (adapters/redis_read_model.py), so those hits are
hydrated from there: the user's own, in the scope fields asked for, in the states asked for.
What only Postgres has is missing from them: the similarity to the query, the access
counts. A filter tree cannot be evaluated here, so a search with one still needs Postgres.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from adapters.redis_read_model import RedisReadModel
from domain.expiry import is_expired
from query_api.pg_reads import Scope


def api_document(doc: dict) -> dict:
    """A Redis memory document in the shape application/memory_document.py gives (and `similarity`)."""
    return {"id": doc["id"], "memory": doc["text"], "user_id": doc["user_id"], "agent_id": doc["agent_id"],
            "run_id": doc["run_id"], "app_id": doc["app_id"], "metadata": doc["metadata"],
            "categories": list(doc["categories"]), "importance": doc["importance"], "state": doc["state"],
            "created_at": doc["created_at"].isoformat(), "updated_at": doc["updated_at"].isoformat(),
            "occurred_at": doc["occurred_at"].isoformat(), "version": doc["version"],
            "access_count": None, "last_accessed_at": None,
            "expires_at": doc["expires_at"].isoformat() if doc.get("expires_at") else None, "expired": False,
            "similarity": None}


def in_scope(doc: dict, scope: Scope) -> bool:
    """The scope's user and fields, not expired at the scope's clock (its states are the read
    model's include_archived)."""
    if scope.filters is not None:
        raise ValueError("a filter tree needs Postgres")
    now = scope.now or datetime.now(timezone.utc)
    return (doc["user_id"] == scope.user_id and all(doc.get(n) == v for n, v in scope.fields.items())
            and (scope.include_expired or not is_expired(doc.get("expires_at"), now)))


def hydrator(read_model: Callable[[], Awaitable[RedisReadModel]]
             ) -> Callable[[list[str], Scope], Awaitable[dict[str, dict]]]:
    """hydrate(ids, scope): the documents of `ids` that pass the scope, by id."""
    async def hydrate(ids: list[str], scope: Scope) -> dict[str, dict]:
        if not ids:
            return {}
        model = await read_model()
        found = await model.get_many(ids, include_archived=scope.include_archived)
        return {i: api_document(d) for i, d in found.items() if in_scope(d, scope)}
    return hydrate
