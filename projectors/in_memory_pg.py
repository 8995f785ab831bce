"""An in-memory double of the Postgres read model's writes (projectors/pg_projection.PgWrites):
the same rows as projectors/pg_store.py writes, in dicts, so every event's effect is tested
without a server (tests/unit/test_projections_pg.py) and the real store is held to the same
observable state (tests/integration/test_read_model_contract.py). Rows are dicts named like
the table columns; memory ids are strings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain import core_memory
from domain.events import (ApiKeyIssued, ApiKeyRevoked, Event, MemoryAccessed, MemoryConsolidated, MemoryCreated,
                           MemoryDeleted, MemoryScopeDeleted, MemoryShared, MemoryUnshared, MemoryUpdated,
                           UserRegistered)
from domain.events import UserProfileUpdated
from projectors.applied import Applied
from projectors import core_memory_rows

_SCOPE = ("agent_id", "run_id", "app_id")


class InMemoryPg:
    """PgWrites over dicts: `memories` (id -> row), `history` ((event_id, memory_id) -> row),
    `users`, `api_keys`, `shares` ((memory_id, grantee) -> row), `profiles` (user_id -> row)."""

    def __init__(self) -> None:
        self.memories: dict[str, dict] = {}
        self.history: dict[tuple[str, str], dict] = {}
        self.users: dict[str, dict] = {}
        self.api_keys: dict[str, dict] = {}
        self.shares: dict[tuple[str, str], dict] = {}
        self.profiles: dict[str, dict] = {}  # user_id -> the latest profile row
        self.core_blocks: dict[tuple[str, str, str], dict] = {}
        self.core_history: dict[str, dict] = {}

    def _new_memory(self, event: MemoryCreated | MemoryConsolidated, happened_at) -> dict:
        return {"id": event.memory_id, "user_id": event.user_id, "agent_id": event.agent_id, "run_id": event.run_id,
                "app_id": event.app_id, "text": event.text, "embedding": tuple(event.embedding),
                "embedding_model": event.embedding_model, "metadata": dict(event.metadata),
                "categories": list(event.categories), "importance": event.importance, "state": "active",
                "version": 1, "created_at": event.occurred_at, "updated_at": event.occurred_at,
                "occurred_at": happened_at, "last_event_id": event.event_id, "access_count": 0,
                "last_accessed_at": None, "expires_at": getattr(event, "expires_at", None)}  # a summary: None

    async def create_memories(self, items: Sequence[Applied]) -> None:
        for item in items:
            event = item.event
            if event.memory_id not in self.memories:
                self.memories[event.memory_id] = self._new_memory(event, event.happened_at)
                self._history(event, item, event.memory_id, None, event.text, None, event.metadata)

    async def create_summary(self, event: MemoryConsolidated, at: Applied) -> bool:
        if event.memory_id in self.memories:
            return False
        self.memories[event.memory_id] = self._new_memory(event, event.happened_at or event.occurred_at)
        self._history(event, at, event.memory_id, None, event.text, None, event.metadata)
        return True

    async def update_memory(self, event: MemoryUpdated, at: Applied) -> None:
        row = self.memories.get(event.memory_id)
        if row is None or row["user_id"] != event.user_id or row["state"] == "deleted" \
                or row["last_event_id"] == event.event_id:
            return
        old_text, old_metadata = row["text"], row["metadata"]
        changes = {"text": event.text, "embedding": event.embedding, "embedding_model": event.embedding_model,
                   "metadata": event.metadata, "importance": event.importance,
                   "categories": list(event.categories) if event.categories is not None else None}
        row.update({k: v for k, v in changes.items() if v is not None})
        if event.expiry_cleared or event.expires_at is not None:
            row["expires_at"] = None if event.expiry_cleared else event.expires_at
        self._touch(row, event)
        self._history(event, at, event.memory_id, old_text, event.text or old_text, old_metadata, event.metadata)

    async def delete_memory(self, event: MemoryDeleted, at: Applied) -> None:
        row = self.memories.get(event.memory_id)
        if row is not None and row["user_id"] == event.user_id:
            self._mark_deleted([row], event, at)

    async def delete_scope(self, event: MemoryScopeDeleted, at: Applied) -> None:
        self._mark_deleted([r for r in self.memories.values() if r["user_id"] == event.user_id and all(
            getattr(event, name) is None or r[name] == getattr(event, name) for name in _SCOPE)], event, at)

    def _mark_deleted(self, rows: list[dict], event: Event, at: Applied) -> None:
        for row in rows:
            if row["state"] != "deleted":
                row["state"] = "deleted"
                self._touch(row, event)
                self._history(event, at, row["id"], row["text"], None, None, None)

    async def set_state(self, event: Event, at: Applied, memory_ids: Sequence[str], to: str,
                        from_states: Sequence[str]) -> None:
        for memory_id in dict.fromkeys(memory_ids):
            row = self.memories.get(memory_id)
            if row is not None and row["user_id"] == event.user_id and row["state"] in from_states:
                row["state"] = to
                self._touch(row, event)
                self._history(event, at, memory_id, row["text"], row["text"], None, None)

    async def count_accesses(self, events: Sequence[MemoryAccessed]) -> None:
        for event in events:
            for memory_id in dict.fromkeys(event.memory_ids):
                row = self.memories.get(memory_id)
                if row is not None and row["user_id"] == event.user_id:
                    row["access_count"] += 1
                    last = row["last_accessed_at"]
                    row["last_accessed_at"] = event.occurred_at if last is None else max(last, event.occurred_at)

    async def erase_user(self, user_id: str) -> None:
        self.memories = {k: r for k, r in self.memories.items() if r["user_id"] != user_id}
        self.history = {k: r for k, r in self.history.items() if r["user_id"] != user_id}
        self.users.pop(user_id, None)
        self.api_keys = {k: r for k, r in self.api_keys.items() if r["user_id"] != user_id}
        self.shares = {k: r for k, r in self.shares.items() if user_id not in (r["user_id"], r["grantee_user_id"])}
        self.profiles.pop(user_id, None)
        self.core_blocks = {k: r for k, r in self.core_blocks.items() if r["user_id"] != user_id}
        self.core_history = {k: r for k, r in self.core_history.items() if r["user_id"] != user_id}

    async def register_user(self, event: UserRegistered) -> None:
        row = self.users.get(event.user_id)
        display_name = event.display_name if event.display_name is not None or row is None else row["display_name"]
        self.users[event.user_id] = {
            "user_id": event.user_id, "display_name": display_name, "is_admin": event.is_admin,
            "registered_at": row["registered_at"] if row else event.occurred_at, "last_event_id": event.event_id}

    async def issue_key(self, event: ApiKeyIssued) -> None:
        self.api_keys.setdefault(event.key_id, {
            "key_id": event.key_id, "user_id": event.user_id, "prefix": event.prefix, "key_hash": event.key_hash,
            "scopes": list(event.scopes), "name": event.name, "created_at": event.occurred_at,
            "expires_at": event.expires_at, "actor": event.actor, "parent_key_id": event.parent_key_id,
            "revoked_at": None, "revoked_reason": None})

    async def revoke_key(self, event: ApiKeyRevoked) -> None:
        row = self.api_keys.get(event.key_id)
        if row is not None and row["user_id"] == event.user_id and row["revoked_at"] is None:
            row.update(revoked_at=event.occurred_at, revoked_reason=event.reason)

    async def share(self, event: MemoryShared) -> None:
        memory = self.memories.get(event.memory_id)
        if memory is not None and memory["user_id"] == event.user_id:
            self.shares.setdefault((event.memory_id, event.grantee_user_id), {
                "memory_id": event.memory_id, "user_id": event.user_id, "grantee_user_id": event.grantee_user_id,
                "permission": event.permission, "shared_at": event.occurred_at})

    async def unshare(self, event: MemoryUnshared) -> None:
        share = self.shares.get((event.memory_id, event.grantee_user_id))
        if share is not None and share["user_id"] == event.user_id:
            del self.shares[(event.memory_id, event.grantee_user_id)]

    async def save_profile(self, event: UserProfileUpdated) -> None:
        row = self.profiles.get(event.user_id)
        if row is None or row["version"] < event.version:
            self.profiles[event.user_id] = {
                "user_id": event.user_id, "version": event.version, "profile": event.profile,
                "builder": event.builder, "built_from": event.built_from, "memory_count": event.memory_count,
                "updated_at": event.occurred_at, "last_event_id": event.event_id}

    async def edit_core_block(self, event: Event, at: Applied) -> None:
        """The same rows as projectors/core_memory_rows.py: `core_blocks` ((user, agent or '', label) ->
        row), `core_history` (event_id -> row)."""
        if event.event_id in self.core_history:
            return
        key = (event.user_id, event.agent_id or "", event.label)
        before = core_memory_rows.block_of(self.core_blocks.get(key))
        outcome = core_memory.apply(before, event)
        after = outcome.block
        if outcome.skipped is None and after is None:
            del self.core_blocks[key]
        elif outcome.skipped is None:
            self.core_blocks[key] = {**dict(zip(("user_id", "agent_id", "label"), key)), "value": after.value,
                                     "limit_tokens": after.limit_tokens, "description": after.description,
                                     "version": after.version, "created_at": after.created_at,
                                     "updated_at": after.updated_at, "last_event_id": event.event_id}
        self.core_history[event.event_id] = core_memory_rows.history_row(event, at, before, outcome)

    def _touch(self, row: dict, event: Event) -> None:
        row.update(updated_at=event.occurred_at, version=row["version"] + 1, last_event_id=event.event_id)

    def _history(self, event: Event, at: Applied, memory_id: str, old_text: Any, new_text: Any, old_metadata: Any,
                 new_metadata: Any) -> None:
        self.history.setdefault((event.event_id, memory_id), {
            "event_id": event.event_id, "memory_id": memory_id, "user_id": event.user_id,
            "event_type": event.event_type, "actor": event.actor, "correlation_id": event.correlation_id,
            "occurred_at": event.occurred_at, "log_partition": at.partition, "log_offset": at.offset,
            "old_text": old_text, "new_text": new_text, "old_metadata": old_metadata, "new_metadata": new_metadata,
            "reason": getattr(event, "reason", None)})
