"""Core memory blocks' use cases: edits (command side) and reads (query side). No HTTP here.

An edit is checked against the block as the Postgres read model has it, so two edits of one block
must not both check the same state (each within the limit, together over it). Each edit
therefore runs under a per-block lock (`BlockLocks`, Redis in production) that also remembers
the consistency token of the block's last edit: the next holder first waits until Postgres has
applied it, then reads the block, checks, appends, and records its own token. Concurrent edits
are thus applied one after another, each onto the state the previous one left; one that cannot
get the lock within the bound, or whose wait for the read model times out, is refused (BlockBusy,
NotYetApplied: nothing appended, retry). The event's `version` guards the read model should the
lock ever lapse (domain/core_memory.apply).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from domain import core_memory
from domain.consistency import ConsistencyToken
from domain.core_memory import Block, BlockNotFound
from domain.events import Event, new_id

Count = Callable[[str], int]


class BlockReads(Protocol):
    """The Postgres read model's blocks (adapters/core_memory_reads.py)."""

    async def block(self, user_id: str, agent_id: str | None, label: str) -> Block | None: ...

    async def blocks(self, user_id: str, agent_ids: tuple[str | None, ...]) -> list[Block]:
        """The user's blocks of those scopes (None: user-wide), user-wide first, then by creation."""

    async def history(self, user_id: str, agent_id: str | None, label: str) -> list[dict]: ...


class Held(Protocol):
    last_token: str | None  # the block's last edit, None when unknown (or long applied)

    async def wrote(self, token: str) -> None: ...


class BlockLocks(Protocol):
    def hold(self, key: str) -> AbstractAsyncContextManager[Held]:
        """Exclusive per key across processes; BlockBusy when not had within the bound."""


class Publisher(Protocol):
    async def publish(self, events: list[Event]) -> ConsistencyToken: ...


@dataclass(frozen=True, kw_only=True)
class BlockEdit:
    """One edit: `kind` set | append | replace | delete, with the fields it uses."""
    kind: str
    user_id: str
    actor: str
    label: str
    agent_id: str | None = None
    value: str = ""  # set
    limit_tokens: int | None = None  # set
    description: str | None = None  # set
    content: str = ""  # append
    old_content: str = ""  # replace
    new_content: str = ""  # replace


@dataclass
class Edited:
    event: Event
    token: ConsistencyToken
    value: str | None  # the block after the edit (None: deleted)
    tokens: int


def lock_key(user_id: str, agent_id: str | None, label: str) -> str:
    return f"{user_id}\x00{agent_id or ''}\x00{label}"


@dataclass
class CoreMemoryEdits:
    """The command side: edits under the block's lock, after its last edit is applied."""
    reads: BlockReads
    locks: BlockLocks
    publisher: Publisher
    applied: Callable[[str], Awaitable[None]]  # waits until Postgres applied a token (NotYetApplied)
    count: Count

    async def edit(self, edit: BlockEdit, correlation_id: str, ids: Callable[[str, int], str] | None = None) -> Edited:
        envelope = dict(user_id=edit.user_id, actor=edit.actor, correlation_id=correlation_id,
                        event_id=ids("event", 0) if ids else new_id())
        async with self.locks.hold(lock_key(edit.user_id, edit.agent_id, edit.label)) as held:
            if held.last_token:
                await self.applied(held.last_token)
            current = await self.reads.block(edit.user_id, edit.agent_id, edit.label)
            event, value, tokens = await self._decide(edit, current, envelope)
            token = await self.publisher.publish([event])
            await held.wrote(token.encode())
        return Edited(event, token, value, tokens)

    async def _decide(self, edit: BlockEdit, current: Block | None, envelope: dict) -> tuple[Event, str | None, int]:
        label, agent = edit.label, edit.agent_id
        if edit.kind == "set":
            in_scope = 0 if current else len(await self.reads.blocks(edit.user_id, (agent,)))
            return core_memory.set_event(current, envelope, label, agent, edit.value, edit.limit_tokens,
                                         edit.description, self.count, in_scope)
        if edit.kind == "append":
            return core_memory.append_event(current, envelope, label, agent, edit.content, self.count)
        if edit.kind == "replace":
            return core_memory.replace_event(current, envelope, label, agent, edit.old_content, edit.new_content,
                                             self.count)
        return core_memory.delete_event(current, envelope, label, agent), None, 0


def block_answer(block: Block, count: Count) -> dict:
    return {"label": block.label, "agent_id": block.agent_id, "value": block.value,
            "tokens": count(block.value) if block.value else 0, "limit_tokens": block.limit_tokens,
            "description": block.description, "version": block.version,
            "created_at": block.created_at.isoformat() if block.created_at else None,
            "updated_at": block.updated_at.isoformat() if block.updated_at else None}


@dataclass
class CoreMemoryReads:
    """The query side: after the request's consistency token, from the Postgres read model."""
    reads: BlockReads
    applied: Callable[[str | None], Awaitable[None]]  # Consistency.postgres_applied with its guard
    guarded: Callable[[Awaitable], Awaitable]  # PostgresGuard.read
    count: Count

    async def list_blocks(self, user_id: str, agent_id: str | None, token: str | None) -> dict:
        await self.applied(token)
        blocks = await self.guarded(self.reads.blocks(user_id, (agent_id,)))
        return {"user_id": user_id, "agent_id": agent_id, "encoding": core_memory.ENCODING,
                "results": [block_answer(b, self.count) for b in blocks]}

    async def get_block(self, user_id: str, agent_id: str | None, label: str, token: str | None) -> dict:
        await self.applied(token)
        block = await self.guarded(self.reads.block(user_id, agent_id, label))
        if block is None:
            raise BlockNotFound(label, agent_id)
        return block_answer(block, self.count)

    async def history(self, user_id: str, agent_id: str | None, label: str, token: str | None) -> dict:
        """Every event of the block, oldest first, deleted blocks' too; BlockNotFound when none."""
        await self.applied(token)
        rows = await self.guarded(self.reads.history(user_id, agent_id, label))
        if not rows:
            raise BlockNotFound(label, agent_id)
        return {"label": label, "agent_id": agent_id, "history": rows}

    async def context_blocks(self, user_id: str, agent_id: str | None) -> list[Block]:
        """What /v1/context places first: the user-wide blocks, then the agent's (after the search's token wait)."""
        scopes = (None,) if agent_id is None else (None, agent_id)
        return await self.guarded(self.reads.blocks(user_id, scopes))
