"""Request bodies of the command API, with explicit limits (also shown in the OpenAPI spec).

They live in the application layer, not in command_api/, because the API is not their only
reader: `recallstack import` holds every memory of a file to these very rules before it sends
anything (cli/memory_file.py).

Limits (a rejection names the field; nothing is appended):
- ids (user_id, agent_id, run_id, app_id): 1-128 characters of A-Z a-z 0-9 and ``_ - . : @``,
  starting with a letter or digit (no spaces, no path separators, no control characters).
- text / message content: 1-32,000 characters after Unicode NFC normalisation, no control
  characters other than tab and newline; longer is 413.
- every JSON body (adapters/json_body.py): no NaN/Infinity, numbers within a double's range,
  no NUL (\u0000) and no lone surrogate in any string or key, nesting at most 32 levels.
- metadata: a JSON object, at most 16 KiB as JSON (413), nesting depth at most 5, keys at
  most 128 characters without control characters; numbers finite (also when a model is
  built in Python, as `recallstack import` does, not only through the HTTP parser).
- categories: at most 32, each 1-64 printable characters. importance: 0 to 1.
- messages: 1-200, roles user/assistant/system/tool. batch: 1-1,000 memories (413 above).
- occurred_at: ISO 8601; naive times are taken as UTC.
- expires_at (ISO 8601, naive is UTC, in the future) or ttl_seconds (1 to ten years), not both:
  when the memory stops being true (domain/expiry.py); on an update `expires_at: null` clears it.
- embedding (with embedding_model, text only): a precomputed vector, used as is only when
  its model is the command API's embedder and its length is that embedder's dimension
  (else 422 naming the field); finite, L2-normalised (norm 1 within 1e-3).
"""

from __future__ import annotations

import json
import math
import re
import sys
import unicodedata
from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator,
                      model_validator)
from pydantic_core import PydanticCustomError

from domain import expiry
from domain.identifiers import ID_PATTERN
from domain.text import is_unicode
from domain.turn_context import CONTEXT_TURNS, MAX_CONTEXT_TURNS

MAX_TEXT_CHARS = 32_000
MAX_ID_CHARS = 128
MAX_METADATA_BYTES = 16_384
MAX_METADATA_DEPTH = 5
MAX_BATCH = 1_000
MAX_EMBEDDING_DIM = 8_192
NORM_TOLERANCE = 1e-3
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]")


def too_large(message: str) -> PydanticCustomError:
    """A limit whose breach answers 413 rather than 422."""
    return PydanticCustomError("too_large", message)


def encodable(value: str) -> str:
    """JSON may escape a lone surrogate (`"\\ud800"`); no UTF-8 text (the log, the read models,
    the embedder) can hold one: 422 here rather than a failure after validation."""
    if not is_unicode(value):
        raise PydanticCustomError("invalid_unicode", "must not contain lone surrogates (not valid Unicode text)")
    return value


def clean_text(value: str) -> str:
    value = unicodedata.normalize("NFC", encodable(value))
    if not value.strip():
        raise PydanticCustomError("blank", "must not be blank")
    if len(value) > MAX_TEXT_CHARS:
        raise too_large(f"{len(value)} characters, at most {MAX_TEXT_CHARS}")
    if _CONTROL.search(value.replace("\r\n", "\n")):
        raise PydanticCustomError("control_character", "must not contain control characters (tab and newline are allowed)")
    return value


def _nodes(value):
    """(depth, node) of every value inside a JSON value, iteratively (no recursion to exhaust);
    the top object is depth 0, its values depth 1 (a container there is one level of nesting)."""
    stack = [(0, value)]
    while stack:
        depth, node = stack.pop()
        yield depth, node
        if depth > MAX_METADATA_DEPTH:
            continue  # deep enough to refuse: no need to look further down
        if isinstance(node, dict):
            stack.extend((depth + 1, child) for child in node.values())
        elif isinstance(node, list):
            stack.extend((depth + 1, child) for child in node)


def check_metadata(value: dict) -> dict:
    """What every read model can hold: Postgres jsonb refuses NaN/Infinity, NUL and lone
    surrogates (the HTTP parser refuses those first; this also guards models built in Python)."""
    for depth, node in _nodes(value):
        if isinstance(node, (dict, list)) and depth >= MAX_METADATA_DEPTH:
            raise PydanticCustomError("too_deep", f"nested deeper than {MAX_METADATA_DEPTH} levels")
        if isinstance(node, dict):
            for key in node:
                if not isinstance(key, str) or len(key) > 128 or _CONTROL.search(key):
                    raise PydanticCustomError("bad_key", f"key {str(key)[:40]!r}… is longer than 128 characters or "
                                                         "has control characters")
        elif isinstance(node, float) and not math.isfinite(node):
            raise PydanticCustomError("non_finite_number", "numbers must be finite (no NaN or Infinity)")
        elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > sys.float_info.max:
            raise PydanticCustomError("non_finite_number", f"numbers must be within ±{sys.float_info.max!r}")
        elif isinstance(node, str) and "\x00" in node:  # no stored JSON can hold it (Postgres jsonb refuses it)
            raise PydanticCustomError("nul_character", "values must not contain the NUL character (\\u0000)")
        elif node is not None and not isinstance(node, (dict, list, str, int, float)):
            raise PydanticCustomError("not_json", f"a {type(node).__name__} is not a JSON value")
    size = len(encodable(json.dumps(value, ensure_ascii=False)).encode())
    if size > MAX_METADATA_BYTES:
        raise too_large(f"{size} bytes of JSON, at most {MAX_METADATA_BYTES}")
    return value


def utc(value: datetime | None) -> datetime | None:
    """Naive times are taken as UTC, as documented; every time is stored in UTC, so one whose
    offset moves it out of years 1-9999 (`0001-01-01T00:00:00+14:00`) cannot be stored."""
    if value is None:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError as exc:
        raise PydanticCustomError("datetime_out_of_range", "must be within 0001-01-01 and 9999-12-31 in UTC") from exc


def check_category(value: str) -> str:
    value = unicodedata.normalize("NFC", encodable(value)).strip()
    if not 1 <= len(value) <= 64 or _CONTROL.search(value):
        raise PydanticCustomError("bad_category", "each category is 1-64 printable characters")
    return value


# Every body: unknown fields refused; floats finite ("NaN" or "Infinity" as strings too).
STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)

Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=MAX_ID_CHARS, examples=["alice"],
                          description="1-128 of A-Z a-z 0-9 _ - . : @, starting with a letter or digit")]
Text = Annotated[str, AfterValidator(clean_text), Field(description=f"1-{MAX_TEXT_CHARS} characters")]
Metadata = Annotated[dict, AfterValidator(check_metadata),
                     Field(description=f"a JSON object, at most {MAX_METADATA_BYTES} bytes, depth {MAX_METADATA_DEPTH}")]
Category = Annotated[str, AfterValidator(check_category)]


EXPIRES_HELP = ("when the memory stops being true (ISO 8601; naive is UTC; must be in the future): from then on it "
                "leaves search, list and context, and the forget worker records MemoryExpired. Not with ttl_seconds")
TTL_HELP = f"the same as expires_at, in seconds from now (1 to {expiry.MAX_TTL_SECONDS}); not with expires_at"


class Expiring(BaseModel):
    """`expires_at` or `ttl_seconds`: a memory's expiry, checked against the clock when the request arrives."""
    model_config = STRICT
    expires_at: datetime | None = Field(default=None, description=EXPIRES_HELP)
    ttl_seconds: int | None = Field(default=None, strict=True, ge=1, le=expiry.MAX_TTL_SECONDS, description=TTL_HELP)

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        value = utc(value)
        return None if value is None else _expiry_checked(lambda: expiry.check_future(value, _now()))

    @field_validator("ttl_seconds")
    @classmethod
    def _alone(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("expires_at") is not None:
            raise PydanticCustomError("expiry_twice", "give expires_at or ttl_seconds, not both")
        return value

    def expiry(self, now: datetime) -> datetime | None:
        """The absolute expiry the request asks for (None: none): what the event carries. A ttl counts
        from `now`; an expires_at was checked to be in the future when the request arrived."""
        if self.ttl_seconds is not None:
            return expiry.expiry_of(None, self.ttl_seconds, now)
        return self.expires_at


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _expiry_checked(check):
    try:
        return check()
    except expiry.ExpiryError as exc:
        raise PydanticCustomError("bad_expiry", exc.message) from None


class Message(BaseModel):
    model_config = STRICT
    role: Literal["user", "assistant", "system", "tool"]
    content: Text


class Scope(BaseModel):
    model_config = STRICT
    user_id: Id | None = Field(default=None, description="whose memory; default the API key's user (an admin key "
                               "may name any user)")
    agent_id: Id | None = None
    run_id: Id | None = None
    app_id: Id | None = None


class AddMemoryRequest(Expiring, Scope):
    text: Text | None = None
    messages: list[Message] | None = Field(default=None, min_length=1, max_length=200)
    metadata: Metadata = Field(default_factory=dict)
    categories: list[Category] = Field(default_factory=list, max_length=32)
    importance: float | None = Field(default=None, ge=0.0, le=1.0)
    occurred_at: datetime | None = Field(default=None, description="when the remembered thing happened; default now")
    infer: bool | None = Field(default=None, description="extract facts (ConversationReceived) instead of storing "
                               "messages as given; default true only when an extractor is configured")
    embedding: list[Annotated[float, Field(allow_inf_nan=False)]] | None = Field(
        default=None, min_length=1, max_length=MAX_EMBEDDING_DIM,
        description="a precomputed vector of `text` (what `recallstack import` sends from an export), with "
                    "`embedding_model`: used as is, without re-embedding, only when `embedding_model` is the command "
                    "API's embedder model id and the length is its dimension, else 422 naming the field. Finite and "
                    "L2-normalised (norm 1 within 1e-3). Omit it to have the text embedded here")
    embedding_model: str | None = Field(
        default=None, min_length=1, max_length=256,
        description="the model id of `embedding` (e.g. sentence-transformers/all-MiniLM-L6-v2); required with it")

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return utc(value)

    @field_validator("embedding")
    @classmethod
    def _unit(cls, value: list[float] | None) -> list[float] | None:
        if value is not None:
            if any(abs(x) > 1.0 + NORM_TOLERANCE for x in value):  # also keeps fsum from overflowing (1e308)
                raise PydanticCustomError("not_normalised", "must be L2-normalised (a component is beyond ±1)")
            norm = math.sqrt(math.fsum(x * x for x in value))
            if abs(norm - 1.0) > NORM_TOLERANCE:
                raise PydanticCustomError("not_normalised", f"must be L2-normalised (norm {norm:.4f}, expected 1)")
        return value

    @model_validator(mode="after")
    def _one_source(self):
        if (self.text is None) == (self.messages is None):
            raise PydanticCustomError("text_or_messages", "give exactly one of `text` or `messages`")
        if (self.embedding is None) != (self.embedding_model is None):
            raise PydanticCustomError("embedding_pair", "give `embedding` and `embedding_model` together")
        if self.embedding is not None and self.text is None:
            raise PydanticCustomError("embedding_needs_text", "`embedding` goes with `text`, not with `messages`")
        return self

    def texts(self) -> list[tuple[str, dict]]:
        """The memories stored as given (infer off): the text, or each user/assistant message,
        with its role in metadata, as mem0 does with infer=False. System and tool messages
        are context, not memories."""
        if self.text is not None:
            return [(self.text, {})]
        return [(m.content, {"role": m.role}) for m in self.messages or [] if m.role in ("user", "assistant")]


class BatchAddRequest(BaseModel):
    model_config = STRICT
    memories: list[AddMemoryRequest] = Field(min_length=1, description=f"1-{MAX_BATCH} add bodies")
    context_turns: int = Field(
        default=CONTEXT_TURNS, ge=0, le=MAX_CONTEXT_TURNS,
        description="the batch is taken as turns of a conversation, in order: each memory carries the texts of "
                    "up to this many memories before it in the batch (same user, agent, run and app, at most 6 hours "
                    "apart) as context, which search matches at a lower weight. 0: none (an import)")

    @field_validator("memories", mode="before")
    @classmethod
    def _count(cls, value):
        if isinstance(value, list) and len(value) > MAX_BATCH:
            raise too_large(f"{len(value)} memories, at most {MAX_BATCH} per batch")
        return value


class UpdateMemoryRequest(Expiring):
    model_config = STRICT
    text: Text | None = None
    metadata: Metadata | None = Field(default=None, description="replaces the whole metadata")
    categories: list[Category] | None = Field(default=None, max_length=32, description="replaces the categories")
    importance: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _something(self):
        if (self.text is None and self.metadata is None and self.categories is None and self.importance is None
                and not self.changes_expiry):
            raise PydanticCustomError("nothing_to_update", "give at least one of text, metadata, categories, "
                                                           "importance, expires_at, ttl_seconds")
        return self

    @property
    def changes_expiry(self) -> bool:
        return "expires_at" in self.model_fields_set or self.ttl_seconds is not None

    @property
    def clears_expiry(self) -> bool:
        """`expires_at: null` given: the memory no longer expires."""
        return "expires_at" in self.model_fields_set and self.expires_at is None and self.ttl_seconds is None


class ShareRequest(BaseModel):
    model_config = STRICT
    grantee_user_id: Id = Field(description="the user who may read the memory (read-only)")


class IssueKeyRequest(BaseModel):
    model_config = STRICT
    user_id: Id | None = Field(default=None, description="whose key; default the calling key's user (only an admin "
                               "key may name another user)")
    scopes: list[Literal["read", "write", "admin"]] = Field(
        min_length=1, max_length=3, description="write implies read, admin implies both and acts for any user; a "
                                                "non-admin key may issue only scopes it holds, never admin")
    name: Annotated[str, AfterValidator(encodable)] | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$", description="a label shown in lists")
    expires_at: datetime | None = Field(default=None, description="when the key stops working (ISO 8601; naive is "
                                        "UTC); default never, or when the issuing key expires: a key expires no "
                                        "later than the key that issues it (a later time is refused)")

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        value = utc(value)
        if value is None:
            return value
        if value <= datetime.now(timezone.utc):
            raise PydanticCustomError("in_the_past", "must be in the future")
        return value


class RegisterUserRequest(BaseModel):
    model_config = STRICT
    user_id: Id
    display_name: Annotated[str, AfterValidator(encodable)] | None = Field(
        default=None, min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")
    is_admin: bool = False
