"""Commands: requests to change state, named in the imperative. They may be refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, kw_only=True)
class Command:
    user_id: str
    actor: str  # who asks: user:<id>, key:<prefix>, worker:<name>


@dataclass(frozen=True, kw_only=True)
class AddMemory(Command):
    text: str
    agent_id: str | None = None
    run_id: str | None = None
    app_id: str | None = None
    metadata: dict = field(default_factory=dict)
    categories: tuple[str, ...] = ()
    importance: float | None = None
    happened_at: datetime | None = None
    # A precomputed vector of `text` and its model id (an import): used only when the model
    # and dimension are the embedder's, else the command is refused. None: embed the text.
    embedding: tuple[float, ...] | None = None
    embedding_model: str | None = None
    expires_at: datetime | None = None  # when it stops being true (domain/expiry.py); None: never


@dataclass(frozen=True, kw_only=True)
class ReceiveConversation(Command):
    """Messages to extract facts from (infer=true); the extraction worker decides what to keep."""
    messages: tuple[tuple[str, str], ...]  # (role, content)
    agent_id: str | None = None
    run_id: str | None = None
    app_id: str | None = None
    metadata: dict = field(default_factory=dict)
    happened_at: datetime | None = None
    expires_at: datetime | None = None  # the extracted memories' expiry


@dataclass(frozen=True, kw_only=True)
class UpdateMemory(Command):
    memory_id: str
    text: str | None = None
    metadata: dict | None = None
    categories: tuple[str, ...] | None = None
    importance: float | None = None
    expires_at: datetime | None = None  # a new expiry
    clears_expiry: bool = False  # the memory no longer expires


@dataclass(frozen=True, kw_only=True)
class DeleteMemory(Command):
    memory_id: str


@dataclass(frozen=True, kw_only=True)
class DeleteScope(Command):
    agent_id: str | None = None
    run_id: str | None = None
    app_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class RestoreMemory(Command):
    """Make a forgotten (or archived) memory active again."""
    memory_id: str


@dataclass(frozen=True, kw_only=True)
class ShareMemory(Command):
    """Let `grantee_user_id` read one memory of `user_id` (read-only; the only permission)."""
    memory_id: str
    grantee_user_id: str


@dataclass(frozen=True, kw_only=True)
class UnshareMemory(Command):
    memory_id: str
    grantee_user_id: str


@dataclass(frozen=True, kw_only=True)
class RegisterUser(Command):
    display_name: str | None = None
    is_admin: bool = False


@dataclass(frozen=True, kw_only=True)
class IssueApiKey(Command):
    """A new key for `user_id`; its secret is answered once and never stored. Issued by a key
    (`parent_key_id`), it expires no later than that key's chain (`parent_expires_at`)."""
    scopes: tuple[str, ...]
    name: str | None = None
    expires_at: datetime | None = None
    parent_key_id: str | None = None  # None: issued by an operator (CLI) or in the no-auth mode
    parent_expires_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class RevokeApiKey(Command):
    key_id: str
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class EraseUser(Command):
    """Erase everything of `user_id` (right to be forgotten): keys destroyed, then UserErased."""
    reason: str | None = None
