"""Domain events: immutable facts, named in the past tense.

Every event carries the envelope fields of the contract (event_id, event_type,
schema_version, occurred_at, user_id, actor, correlation_id, causation_id).
`occurred_at` is when the event happened; a memory's own `happened_at` is when the
remembered thing happened (the REST field `occurred_at` of an add).

Each class mirrors the latest version of its Avro schema in schemas/
(`schema_version` is that version; a test keeps both in step). Optional fields
default to None; sequences are tuples; dict fields travel as JSON strings
(`<name>_json`). Datetimes are timezone-aware UTC.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import ClassVar


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, kw_only=True)
class Event:
    event_type: ClassVar[str]
    schema_version: ClassVar[int]

    user_id: str
    actor: str
    event_id: str = field(default_factory=new_id)
    occurred_at: datetime = field(default_factory=utcnow)
    correlation_id: str = field(default_factory=new_id)
    causation_id: str | None = None


# --- values nested in events -------------------------------------------------------


@dataclass(frozen=True)
class Entity:
    name: str
    type: str  # e.g. person, place, project


@dataclass(frozen=True)
class Relation:
    source: str  # an entity name
    type: str  # e.g. works_at
    target: str  # an entity name


@dataclass(frozen=True)
class ChatMessage:
    role: str  # user, assistant, system, tool
    content: str


# --- memories ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MemoryCreated(Event):
    """A memory was stored, with the vector computed once in the command path."""
    event_type: ClassVar[str] = "MemoryCreated"
    schema_version: ClassVar[int] = 4

    memory_id: str
    text: str
    embedding: tuple[float, ...]
    embedding_model: str
    happened_at: datetime
    agent_id: str | None = None
    run_id: str | None = None
    app_id: str | None = None
    metadata: dict = field(default_factory=dict)
    categories: tuple[str, ...] = ()
    importance: float | None = None
    entities: tuple[Entity, ...] = ()  # v2
    relations: tuple[Relation, ...] = ()  # v2
    # v3: the turns written just before it in the same request and scope (domain/turn_context).
    context: str | None = None
    # v4: when it stops being true (domain/expiry.py); None: never.
    expires_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class MemoryUpdated(Event):
    """A memory changed. Every field left None is unchanged; metadata and categories
    replace the whole value when given. A new text comes with its new embedding.
    v2: a new `expires_at`, or `expiry_cleared` (the memory no longer expires)."""
    event_type: ClassVar[str] = "MemoryUpdated"
    schema_version: ClassVar[int] = 2

    memory_id: str
    text: str | None = None
    embedding: tuple[float, ...] | None = None
    embedding_model: str | None = None
    metadata: dict | None = None
    categories: tuple[str, ...] | None = None
    importance: float | None = None
    reason: str | None = None
    expires_at: datetime | None = None  # v2
    expiry_cleared: bool = False  # v2


@dataclass(frozen=True, kw_only=True)
class MemoryDeleted(Event):
    event_type: ClassVar[str] = "MemoryDeleted"
    schema_version: ClassVar[int] = 1

    memory_id: str
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class MemoryScopeDeleted(Event):
    """Delete all of a scope: every memory of user_id created before this event in the
    log that matches all the scope fields given (none given: all the user's memories)."""
    event_type: ClassVar[str] = "MemoryScopeDeleted"
    schema_version: ClassVar[int] = 1

    agent_id: str | None = None
    run_id: str | None = None
    app_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class MemoryAccessed(Event):
    """Memories were read in a way that counts as access (feeds decay and ranking)."""
    event_type: ClassVar[str] = "MemoryAccessed"
    schema_version: ClassVar[int] = 1

    memory_ids: tuple[str, ...]
    source: str  # "search" | "get" | "context"
    query: str | None = None


@dataclass(frozen=True, kw_only=True)
class MemoryConsolidated(Event):
    """Several memories were merged into one summary memory (memory_id, new); the sources
    become archived (still readable with include_archived). v2 gives the summary the
    sources' scope, time, importance and entities so read models store it like a create."""
    event_type: ClassVar[str] = "MemoryConsolidated"
    schema_version: ClassVar[int] = 2

    memory_id: str
    source_memory_ids: tuple[str, ...]
    text: str
    embedding: tuple[float, ...]
    embedding_model: str
    reason: str
    agent_id: str | None = None  # v2
    run_id: str | None = None  # v2
    app_id: str | None = None  # v2
    metadata: dict = field(default_factory=dict)  # v2
    categories: tuple[str, ...] = ()  # v2
    importance: float | None = None  # v2
    happened_at: datetime | None = None  # v2: None means occurred_at
    entities: tuple[Entity, ...] = ()  # v2
    relations: tuple[Relation, ...] = ()  # v2


@dataclass(frozen=True, kw_only=True)
class MemoryForgotten(Event):
    """A worker let a memory go (decayed, superseded...); unlike a delete, not asked for."""
    event_type: ClassVar[str] = "MemoryForgotten"
    schema_version: ClassVar[int] = 1

    memory_id: str
    reason: str
    score: float | None = None


@dataclass(frozen=True, kw_only=True)
class MemoryExpired(Event):
    """A memory's `expires_at` passed (domain/expiry.py): the forget worker records it, and every
    read model hides the memory as it hides a forgotten one (reads already hid it from that instant)."""
    event_type: ClassVar[str] = "MemoryExpired"
    schema_version: ClassVar[int] = 1

    memory_id: str
    expires_at: datetime
    reason: str = "expired"


@dataclass(frozen=True, kw_only=True)
class MemoryRestored(Event):
    """A forgotten or archived memory is active again (undoes MemoryForgotten)."""
    event_type: ClassVar[str] = "MemoryRestored"
    schema_version: ClassVar[int] = 1

    memory_id: str
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class ConversationReceived(Event):
    """Raw messages waiting for extraction (an add with infer=true). v2: `expires_at`, which the
    memories extracted from it carry."""
    event_type: ClassVar[str] = "ConversationReceived"
    schema_version: ClassVar[int] = 2

    conversation_id: str
    messages: tuple[ChatMessage, ...]
    happened_at: datetime
    agent_id: str | None = None
    run_id: str | None = None
    app_id: str | None = None
    metadata: dict = field(default_factory=dict)
    expires_at: datetime | None = None  # v2


@dataclass(frozen=True, kw_only=True)
class MemoryShared(Event):
    event_type: ClassVar[str] = "MemoryShared"
    schema_version: ClassVar[int] = 1

    memory_id: str
    grantee_user_id: str
    permission: str = "read"


@dataclass(frozen=True, kw_only=True)
class MemoryUnshared(Event):
    event_type: ClassVar[str] = "MemoryUnshared"
    schema_version: ClassVar[int] = 1

    memory_id: str
    grantee_user_id: str


# --- core memory blocks (domain/core_memory.py) -------------------------------------


@dataclass(frozen=True, kw_only=True)
class CoreMemoryBlockCreated(Event):
    """A core memory block (a named text always first in context) was created, at version 1.
    agent_id None: the block is user-wide."""
    event_type: ClassVar[str] = "CoreMemoryBlockCreated"
    schema_version: ClassVar[int] = 1

    label: str
    value: str
    limit_tokens: int
    agent_id: str | None = None
    description: str | None = None


@dataclass(frozen=True, kw_only=True)
class CoreMemoryBlockAppended(Event):
    """`content` was added on a new line; `version` is the block's version after it (applied only
    onto version - 1: see domain/core_memory.apply)."""
    event_type: ClassVar[str] = "CoreMemoryBlockAppended"
    schema_version: ClassVar[int] = 1

    label: str
    content: str
    version: int
    agent_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class CoreMemoryBlockReplaced(Event):
    """Every occurrence of `old_content` became `new_content` (a PUT of the whole value: the old
    value is old_content); a `limit_tokens` or `description` given replaces the block's."""
    event_type: ClassVar[str] = "CoreMemoryBlockReplaced"
    schema_version: ClassVar[int] = 1

    label: str
    old_content: str
    new_content: str
    version: int
    agent_id: str | None = None
    limit_tokens: int | None = None
    description: str | None = None


@dataclass(frozen=True, kw_only=True)
class CoreMemoryBlockDeleted(Event):
    event_type: ClassVar[str] = "CoreMemoryBlockDeleted"
    schema_version: ClassVar[int] = 1

    label: str
    version: int
    agent_id: str | None = None


# --- users and keys ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class UserRegistered(Event):
    event_type: ClassVar[str] = "UserRegistered"
    schema_version: ClassVar[int] = 1

    display_name: str | None = None
    is_admin: bool = False


@dataclass(frozen=True, kw_only=True)
class ApiKeyIssued(Event):
    """An API key was created for user_id. Only its hash is kept; the key is shown once.
    v2: `parent_key_id`, the key that issued it (None: the operator's CLI, the no-auth
    mode, or an event written before v2). A key works only while every key up its chain
    is unrevoked and unexpired (adapters/key_directory.py)."""
    event_type: ClassVar[str] = "ApiKeyIssued"
    schema_version: ClassVar[int] = 2

    key_id: str
    prefix: str  # the key's first characters, shown in lists and used in actor key:<prefix>
    key_hash: str
    scopes: tuple[str, ...]
    name: str | None = None
    expires_at: datetime | None = None
    parent_key_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class ApiKeyRevoked(Event):
    event_type: ClassVar[str] = "ApiKeyRevoked"
    schema_version: ClassVar[int] = 1

    key_id: str
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class UserErased(Event):
    """Everything of user_id must be erased from every read model (right to be forgotten)."""
    event_type: ClassVar[str] = "UserErased"
    schema_version: ClassVar[int] = 1

    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class UserProfileUpdated(Event):
    """A new version of the user's profile (domain/profile.py), built by the consolidation worker
    from the user's active memories as the Postgres projection had them at `built_from` (a
    consistency token: the log position of the last memory change it reflects)."""
    event_type: ClassVar[str] = "UserProfileUpdated"
    schema_version: ClassVar[int] = 1

    version: int  # 1, 2, ... per user
    profile: dict  # section -> [{text, memory_ids}]
    builder: str  # "offline" or "llm:<model>"
    built_from: str | None = None
    memory_count: int = 0  # the active memories it was built from


EVENT_TYPES: dict[str, type[Event]] = {
    cls.event_type: cls
    for cls in (MemoryCreated, MemoryUpdated, MemoryDeleted, MemoryScopeDeleted, MemoryAccessed,
                MemoryConsolidated, MemoryForgotten, MemoryExpired, MemoryRestored, ConversationReceived,
                MemoryShared, MemoryUnshared,
                UserRegistered, ApiKeyIssued, ApiKeyRevoked, UserErased, UserProfileUpdated,
                CoreMemoryBlockCreated, CoreMemoryBlockAppended, CoreMemoryBlockReplaced, CoreMemoryBlockDeleted)
}
