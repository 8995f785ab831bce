"""Command handlers: turn commands into events and append them. No HTTP here.

Each handler takes the command and a CommandContext (the ports it may use) and
returns the events it appended with their consistency token. A refused command
raises before anything is appended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from dataclasses import dataclass
from typing import Protocol

from adapters.embedders import Embedder
from domain.commands import (AddMemory, DeleteMemory, DeleteScope, IssueApiKey, ReceiveConversation, RegisterUser,
                             RestoreMemory, RevokeApiKey, ShareMemory, UnshareMemory, UpdateMemory)
from domain.consistency import ConsistencyToken
from domain.commands import EraseUser
from domain.events import UserErased
from domain.entities import extract_with_topics
from domain.expiry import is_expired
from domain.importance import initial_importance
from domain.events import (ApiKeyIssued, ApiKeyRevoked, ChatMessage, ConversationReceived, Event, MemoryCreated,
                           MemoryDeleted, MemoryRestored, MemoryScopeDeleted, MemoryShared, MemoryUnshared,
                           MemoryUpdated, UserRegistered, new_id, utcnow)
from domain.identity import IssuedKey, child_expiry, issue_key
from domain.turn_context import CONTEXT_TURNS, Turn, embedded_text, preceding_turns


class Publisher(Protocol):
    async def publish(self, events: list[Event]) -> ConsistencyToken: ...


class MemoryLookup(Protocol):
    async def owner(self, memory_id: str) -> tuple[str, str] | None:
        """(user_id, state) of a memory in the read model, or None."""

    async def expiry(self, memory_id: str) -> datetime | None:
        """The memory's expires_at in the read model (None: never, or unknown)."""


class IdentityLookup(Protocol):
    async def key(self, key_id: str) -> tuple[str, bool] | None:
        """(user_id, revoked) of an API key in the read model, or None."""

    async def descendants(self, key_id: str) -> list[tuple[str, str]]:
        """(key_id, user_id) of every unrevoked key issued by this one, transitively."""

    async def user_registered(self, user_id: str) -> bool: ...


class KeyDestroyer(Protocol):
    async def destroy(self, user_id: str) -> list[int]:
        """Destroy every data key of the user (crypto-shredding); returns the versions destroyed."""


class MemoryNotFound(Exception):
    pass


class KeyNotFound(Exception):
    pass


class ShareWithOwner(Exception):
    """A memory is always visible to its owner."""


class UnknownGrantee(Exception):
    """Sharing names a user nobody registered (whoever registered that id later would read it)."""


class AlreadyRevoked(Exception):
    pass


class NothingToRestore(Exception):
    """The memory is active: there is nothing to undo."""


class EmbeddingMismatch(Exception):
    """A given vector is not one this embedder would make (another model, another dimension):
    never trusted, the command is refused. `index` is the command's, `field` the body field."""

    def __init__(self, index: int, field: str, message: str):
        super().__init__(message)
        self.index, self.field = index, field


@dataclass
class CommandContext:
    publisher: Publisher
    correlation_id: str
    # The memory commands' ports; the key and erasure use cases embed and look up no memory.
    embedder: Embedder | None = None
    memories: MemoryLookup | None = None
    # Makes ids deterministic (Idempotency-Key): (kind, index) -> id. Default: random UUIDs.
    ids: Callable[[str, int], str] = lambda kind, index: new_id()
    keys: KeyDestroyer | None = None  # the key store (erasure); adapters/key_store.Keyring
    identity: IdentityLookup | None = None


def _vectors(embedder: Embedder, texts: list[str]):
    return asyncio.to_thread(embedder.embed, texts)


def _given_vector(index: int, command: AddMemory, embedder: Embedder) -> tuple[float, ...] | None:
    """The command's own vector when it may be used as is; None when the text must be embedded.
    A vector of another model or dimension raises: it would not be comparable with the rest."""
    if command.embedding is None:
        return None
    if command.embedding_model != embedder.model_id:
        raise EmbeddingMismatch(index, "embedding_model", f"embedding_model {command.embedding_model!r} is not this "
                                f"server's embedder ({embedder.model_id!r}); omit the embedding to have the text "
                                "embedded here")
    if len(command.embedding) != embedder.dim:
        raise EmbeddingMismatch(index, "embedding", f"embedding has {len(command.embedding)} dimensions, "
                                f"{embedder.model_id} makes {embedder.dim}")
    return tuple(float(x) for x in command.embedding)


async def add_memories(commands: list[AddMemory], ctx: CommandContext, context_turns: int = CONTEXT_TURNS
                       ) -> tuple[list[MemoryCreated], ConsistencyToken]:
    """Embed once, here in the command path (replay never re-embeds), then append all, atomically.
    A command that brings its vector (an import) is not embedded again, provided the vector is
    of this embedder's model and dimension; otherwise the whole call is refused. The commands are
    turns of a conversation, in order: each carries up to `context_turns` before it as context."""
    given = [_given_vector(i, c, ctx.embedder) for i, c in enumerate(commands)]
    missing = [i for i, vector in enumerate(given) if vector is None]
    contexts = preceding_turns([Turn(c.text, (c.user_id, c.agent_id, c.run_id, c.app_id), c.happened_at)
                                for c in commands], context_turns)
    # A turn's vector is of its context and its text (domain/turn_context.embedded_text).
    embedded = (await _vectors(ctx.embedder, [embedded_text(commands[i].text, contexts[i]) for i in missing])
                if missing else [])
    vectors = list(given)
    for i, vector in zip(missing, embedded):
        vectors[i] = tuple(vector.tolist())
    now = utcnow()
    # Entities come with the event (offline, deterministic), so every read model and every
    # replay sees the same graph without an LLM.
    found = [extract_with_topics(c.text) for c in commands]
    events = [
        MemoryCreated(
            user_id=c.user_id, actor=c.actor, correlation_id=ctx.correlation_id, occurred_at=now,
            event_id=ctx.ids("event", i), memory_id=ctx.ids("memory", i), text=c.text,
            embedding=vector, embedding_model=ctx.embedder.model_id,
            happened_at=c.happened_at or now, agent_id=c.agent_id, run_id=c.run_id, app_id=c.app_id,
            metadata=c.metadata, categories=c.categories,
            # The heuristic write-time importance unless the caller set one (docs/memory-lifecycle.md).
            importance=c.importance if c.importance is not None else initial_importance(c.text),
            entities=entities, relations=relations, context=context, expires_at=c.expires_at,
        )
        for i, (c, vector, (entities, relations), context) in enumerate(zip(commands, vectors, found, contexts))
    ]
    return events, await ctx.publisher.publish(events)


async def receive_conversation(command: ReceiveConversation, ctx: CommandContext
                               ) -> tuple[ConversationReceived, ConsistencyToken]:
    now = utcnow()
    event = ConversationReceived(
        user_id=command.user_id, actor=command.actor, correlation_id=ctx.correlation_id, occurred_at=now,
        event_id=ctx.ids("event", 0), conversation_id=ctx.ids("conversation", 0),
        messages=tuple(ChatMessage(role=r, content=c) for r, c in command.messages),
        happened_at=command.happened_at or now, agent_id=command.agent_id, run_id=command.run_id,
        app_id=command.app_id, metadata=command.metadata, expires_at=command.expires_at,
    )
    return event, await ctx.publisher.publish([event])


async def _owned(memory_id: str, user_id: str, ctx: CommandContext) -> str:
    """The memory's state; 404 for a memory that does not exist, is gone, or is someone
    else's (never leak which)."""
    found = await ctx.memories.owner(memory_id)
    if found is None or found[0] != user_id or found[1] == "deleted":
        raise MemoryNotFound(f"memory {memory_id} not found")
    return found[1]


async def update_memory(command: UpdateMemory, ctx: CommandContext) -> tuple[MemoryUpdated, ConsistencyToken]:
    """A new text is embedded here. An update that clears the expiry or gives a new one brings back
    a memory the forget worker hid (as mem0 does when an expiration date is cleared): a
    MemoryRestored follows in the same append."""
    state = await _owned(command.memory_id, command.user_id, ctx)
    vector = None
    if command.text is not None:
        vector = tuple((await _vectors(ctx.embedder, [command.text]))[0].tolist())
    event = MemoryUpdated(
        user_id=command.user_id, actor=command.actor, correlation_id=ctx.correlation_id,
        event_id=ctx.ids("event", 0), memory_id=command.memory_id, text=command.text, embedding=vector,
        embedding_model=ctx.embedder.model_id if vector is not None else None, metadata=command.metadata,
        categories=command.categories, importance=command.importance, expires_at=command.expires_at,
        expiry_cleared=command.clears_expiry,
    )
    events: list[Event] = [event]
    if state == "forgotten" and (command.clears_expiry or command.expires_at is not None):
        events.append(MemoryRestored(user_id=command.user_id, actor=command.actor, correlation_id=ctx.correlation_id,
                                     causation_id=event.event_id, event_id=ctx.ids("event", 1),
                                     memory_id=command.memory_id, reason="its expiry was changed"))
    return event, await ctx.publisher.publish(events)


async def delete_memory(command: DeleteMemory, ctx: CommandContext) -> tuple[MemoryDeleted, ConsistencyToken]:
    await _owned(command.memory_id, command.user_id, ctx)
    event = MemoryDeleted(user_id=command.user_id, actor=command.actor, correlation_id=ctx.correlation_id,
                          event_id=ctx.ids("event", 0), memory_id=command.memory_id)
    return event, await ctx.publisher.publish([event])


async def delete_scope(command: DeleteScope, ctx: CommandContext) -> tuple[MemoryScopeDeleted, ConsistencyToken]:
    """One event: per-user order makes it apply to exactly the memories created before it."""
    event = MemoryScopeDeleted(user_id=command.user_id, actor=command.actor, correlation_id=ctx.correlation_id,
                               event_id=ctx.ids("event", 0), agent_id=command.agent_id, run_id=command.run_id,
                               app_id=command.app_id)
    return event, await ctx.publisher.publish([event])


async def restore_memory(command: RestoreMemory, ctx: CommandContext) -> tuple[MemoryRestored, ConsistencyToken]:
    if await _owned(command.memory_id, command.user_id, ctx) == "active":
        raise NothingToRestore(f"memory {command.memory_id} is active; only a forgotten or archived memory "
                               "can be restored")
    expires_at = await ctx.memories.expiry(command.memory_id)
    if is_expired(expires_at, utcnow()):  # restored, it would stay hidden: reads filter it out
        raise NothingToRestore(f"memory {command.memory_id} expired at {expires_at.isoformat()}; PATCH its "
                               "expires_at (null, or a later time) to bring it back")
    event = MemoryRestored(user_id=command.user_id, actor=command.actor, correlation_id=ctx.correlation_id,
                           event_id=ctx.ids("event", 0), memory_id=command.memory_id, reason="restored on request")
    return event, await ctx.publisher.publish([event])


async def share_memory(command: ShareMemory, ctx: CommandContext) -> tuple[MemoryShared, ConsistencyToken]:
    """Only the owner shares, only an existing memory, never with themselves, only with a
    registered user (checked after ownership, so a stranger learns nothing about users)."""
    await _owned(command.memory_id, command.user_id, ctx)
    if command.grantee_user_id == command.user_id:
        raise ShareWithOwner("grantee_user_id: a memory is always visible to its owner; name another user")
    if ctx.identity is None or not await ctx.identity.user_registered(command.grantee_user_id):
        raise UnknownGrantee(f"grantee_user_id: no registered user {command.grantee_user_id!r} (a user is registered "
                             "by POST /v1/users or by their first API key)")
    event = MemoryShared(user_id=command.user_id, actor=command.actor, correlation_id=ctx.correlation_id,
                         event_id=ctx.ids("event", 0), memory_id=command.memory_id,
                         grantee_user_id=command.grantee_user_id)
    return event, await ctx.publisher.publish([event])


async def unshare_memory(command: UnshareMemory, ctx: CommandContext) -> tuple[MemoryUnshared, ConsistencyToken]:
    await _owned(command.memory_id, command.user_id, ctx)
    event = MemoryUnshared(user_id=command.user_id, actor=command.actor, correlation_id=ctx.correlation_id,
                           event_id=ctx.ids("event", 0), memory_id=command.memory_id,
                           grantee_user_id=command.grantee_user_id)
    return event, await ctx.publisher.publish([event])


async def register_user(command: RegisterUser, ctx: CommandContext) -> tuple[UserRegistered, ConsistencyToken]:
    event = UserRegistered(user_id=command.user_id, actor=command.actor, correlation_id=ctx.correlation_id,
                           event_id=ctx.ids("event", 0), display_name=command.display_name,
                           is_admin=command.is_admin)
    return event, await ctx.publisher.publish([event])


async def issue_api_key(command: IssueApiKey, ctx: CommandContext
                        ) -> tuple[IssuedKey, ApiKeyIssued, ConsistencyToken]:
    """A key for a user (registered on their first key). The secret is in the answer only:
    the event carries its hash. A key issued by a key records it as its parent and expires
    no later than the parent's chain: a later explicit `expires_at` raises
    domain.identity.ExpiryAfterParent, none defaults to the parent's expiry."""
    expires_at = child_expiry(command.expires_at, command.parent_expires_at)
    issued = issue_key(command.scopes)
    envelope = dict(user_id=command.user_id, actor=command.actor, correlation_id=ctx.correlation_id)
    events: list[Event] = []
    if ctx.identity is not None and not await ctx.identity.user_registered(command.user_id):
        events.append(UserRegistered(**envelope, is_admin="admin" in issued.scopes))
    event = ApiKeyIssued(**envelope, key_id=issued.key_id, prefix=issued.prefix, key_hash=issued.key_hash,
                         scopes=issued.scopes, name=command.name, expires_at=expires_at,
                         parent_key_id=command.parent_key_id)
    events.append(event)
    return issued, event, await ctx.publisher.publish(events)


async def revoke_api_key(command: RevokeApiKey, ctx: CommandContext) -> tuple[ApiKeyRevoked, ConsistencyToken]:
    """`command.user_id` is whose key it must be (an admin's request names the key's owner).

    Every unrevoked key it issued, transitively, is revoked in the same append (each event
    under its key's owner, caused by this one), so lists and the log say so. The keys stop
    working even without these events: authentication checks the whole chain, which also
    covers a child whose issue was not yet projected when this ran."""
    found = await ctx.identity.key(command.key_id)
    if found is None or found[0] != command.user_id:
        raise KeyNotFound(f"API key {command.key_id} not found")
    if found[1]:
        raise AlreadyRevoked(f"API key {command.key_id} is already revoked")
    event = ApiKeyRevoked(user_id=command.user_id, actor=command.actor, correlation_id=ctx.correlation_id,
                          event_id=ctx.ids("event", 0), key_id=command.key_id, reason=command.reason)
    cascade = [ApiKeyRevoked(user_id=owner, actor=command.actor, correlation_id=ctx.correlation_id,
                             causation_id=event.event_id, event_id=ctx.ids("event", i), key_id=key_id,
                             reason=f"issued by revoked key {command.key_id}")
               for i, (key_id, owner) in enumerate(await ctx.identity.descendants(command.key_id), start=1)]
    return event, await ctx.publisher.publish([event, *cascade])


async def erase_user(command: EraseUser, ctx: CommandContext) -> tuple[UserErased, ConsistencyToken]:
    """Crypto-shredding (docs/security.md): the user's data keys are destroyed FIRST, so the
    moment this returns (or fails after that step) none of their sealed events can be read
    again, in the log, its backups or a replay; then UserErased tells every projector to
    purge the user's rows, nodes and keys. Idempotent: erasing again destroys nothing new
    and appends another UserErased, which purges nothing new."""
    if ctx.keys is None:
        raise RuntimeError("erase_user needs the key store (CommandContext.keys)")
    await ctx.keys.destroy(command.user_id)
    event = UserErased(user_id=command.user_id, actor=command.actor, correlation_id=ctx.correlation_id,
                       event_id=ctx.ids("event", 0), reason=command.reason)
    return event, await ctx.publisher.publish([event])
