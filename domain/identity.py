"""API keys and principals (pure): issuing, hashing, checking, and what a principal may do.

Keys: `rsk_` + 43 characters of URL-safe base64 (32 random bytes from `secrets`), shown once.
Only `sha256:<hex>` of the whole key is kept (the events carry the hash, never the key):
a key has 256 bits of entropy, so a fast hash is safe, unlike for a password, and lets
every service check a key without a slow KDF on each request. The first 12 characters
(`rsk_` + 8) are the visible prefix that lists and logs show and actors name
(`key:<prefix>`). Comparison is constant-time.

Scopes: `read`, `write`, `admin`. `write` implies `read`; `admin` implies both and lets a key
act for any user. A non-admin key acts only on its own user; another user's memory is
answered as missing (404), never as forbidden, so existence does not leak.

Key chains: a key issued by a key (POST /v1/keys) records that parent. It expires no later
than its parent (a later `expires_at` is refused, none defaults to the parent's) and works
only while every key up its chain is unrevoked and unexpired, so revoking or expiring a key
ends every key it issued, transitively (checked at authentication: adapters/key_directory.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

KEY_PREFIX = "rsk_"
PREFIX_CHARS = 12
SCOPES = ("read", "write", "admin")
_IMPLIED = {"read": {"read"}, "write": {"read", "write"}, "admin": {"read", "write", "admin"}}
# Keys issued through more generations than this are refused at issue (and a longer chain,
# which only a forged log could hold, never authenticates): bounds the walk up a chain.
MAX_KEY_CHAIN = 16


class InvalidScopes(ValueError):
    pass


class ExpiryAfterParent(ValueError):
    """An explicit `expires_at` later than the issuing key's (effective) expiry."""


class ChainTooDeep(ValueError):
    pass


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    secret: str  # shown once, never stored
    prefix: str
    key_hash: str
    scopes: tuple[str, ...]


def normalise_scopes(scopes) -> tuple[str, ...]:
    """The scopes a key holds, implied ones included, in a fixed order; refuses unknown ones."""
    asked = list(scopes or ())
    if not asked:
        raise InvalidScopes(f"give at least one scope of {', '.join(SCOPES)}")
    unknown = sorted({s for s in asked if s not in SCOPES})
    if unknown:
        raise InvalidScopes(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    held = set().union(*(_IMPLIED[s] for s in asked))
    return tuple(s for s in SCOPES if s in held)


def hash_key(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def issue_key(scopes, token_bytes=secrets.token_bytes) -> IssuedKey:
    raw = base64.urlsafe_b64encode(token_bytes(32)).decode().rstrip("=")
    secret = KEY_PREFIX + raw
    return IssuedKey(str(uuid.uuid4()), secret, secret[:PREFIX_CHARS], hash_key(secret), normalise_scopes(scopes))


def child_expiry(requested: datetime | None, parent_expires_at: datetime | None) -> datetime | None:
    """When a key issued by a key whose chain expires at `parent_expires_at` expires: the
    requested time if not later (refused with ExpiryAfterParent if later), else the parent's."""
    if parent_expires_at is None:
        return requested
    if requested is None:
        return parent_expires_at
    if requested > parent_expires_at:
        raise ExpiryAfterParent(f"expires_at: {requested.isoformat()} is after {parent_expires_at.isoformat()}, when "
                                "the key issuing it expires; a key expires no later than the key that issues it "
                                "(omit expires_at to get that time)")
    return requested


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX) and len(value) == len(KEY_PREFIX) + 43


def matches(secret: str, key_hash: str) -> bool:
    """Does `secret` hash to `key_hash`? Constant-time."""
    return hmac.compare_digest(hash_key(secret), key_hash)


class NotPermitted(Exception):
    """The principal may not do this. `kind`: "scope" (the key lacks the scope: 403),
    "user" (another user's data: 403 on a collection, 404 on one memory), "user_required"
    (no user to act for: 422)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the key's user, its scopes."""
    user_id: str | None  # None: the local no-auth mode (acts for whichever user a request names)
    scopes: tuple[str, ...]
    key_prefix: str | None = None  # None: the local no-auth mode
    key_id: str | None = None
    expires_at: datetime | None = None  # the earliest expiry up the key's chain (None: never)
    chain_depth: int = 0  # how many keys issued this one's line (0: issued by an operator)

    def issue_child(self) -> tuple[str | None, datetime | None]:
        """(parent key id, the parent chain's expiry) for a key this principal issues;
        ChainTooDeep when the new key would exceed MAX_KEY_CHAIN generations."""
        if self.key_id is not None and self.chain_depth + 1 >= MAX_KEY_CHAIN:
            raise ChainTooDeep(f"this key is {self.chain_depth + 1} generations down a chain of issued keys; "
                               f"at most {MAX_KEY_CHAIN} are allowed: issue the key from a key higher up")
        return self.key_id, self.expires_at

    @classmethod
    def local(cls) -> "Principal":
        """The no-auth mode's principal (single-user laptops): every scope, any user."""
        return cls(None, SCOPES)

    @property
    def actor(self) -> str:
        return f"key:{self.key_prefix}" if self.key_prefix else f"user:{self.user_id}"

    def actor_for(self, user_id: str) -> str:
        """`key:<prefix>`, or in the no-auth mode `user:<the user acted for>`."""
        return f"key:{self.key_prefix}" if self.key_prefix else f"user:{user_id}"

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def may(self, action: str, user_id: str) -> bool:
        """May this principal `action` ("read" / "write") the data of `user_id`?"""
        if action not in ("read", "write"):
            raise ValueError(f"action must be read or write, got {action!r}")
        return action in self.scopes and (self.is_admin or user_id == self.user_id)

    def acting_user(self, requested: str | None, action: str) -> str:
        """The user a request acts on: the one it names, else the key's own (an admin key must
        name one); NotPermitted when the key lacks the scope or the user is someone else's
        (and the key is no admin)."""
        if action not in self.scopes:
            raise NotPermitted("scope", f"this API key lacks the {action} scope (it has: {', '.join(self.scopes)})")
        if requested is None and (self.user_id is None or self.is_admin):
            # An admin key may act for anyone: it must say for whom (a missed user_id would
            # otherwise act on the admin's own memories without a word).
            raise NotPermitted("user_required", "user_id: required with an admin key" if self.user_id else
                               "user_id: required (no API key names a user in the no-auth mode)")
        user_id = requested or self.user_id
        if not self.may(action, user_id):
            raise NotPermitted("user", f"this API key acts only for its own user ({self.user_id})")
        return user_id

    def require_admin(self) -> None:
        if not self.is_admin:
            raise NotPermitted("scope", "this needs an API key with the admin scope")
