"""Request bodies of the query API (limits shown in the OpenAPI spec; a violation is a 422
naming the field)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from domain.identifiers import ID_PATTERN
from domain.temporal import FIRST_DAY, LAST_DAY, within_calendar

SourceName = Literal["dense", "sparse", "temporal", "graph"]
ScopeId = Field(default=None, pattern=ID_PATTERN)
AS_OF_HELP = ("answer with the state the memories had at a past moment, rebuilt from the log: an ISO 8601 time or "
              "a consistency token (docs/api.md, 'As of a past moment'); the graph source is left out")


def _rerank() -> Any:
    """Strict: a JSON true or false, not "yes" or 1 (a mistyped option must not pass for another)."""
    return Field(default=False, strict=True, description=(
        "reorder the best fused results with the configured cross-encoder (RECALLSTACK_RERANK_URL); refused "
        "(422) when none is configured; when it fails, the fused order is kept and `degraded` names `rerank`"))


def _searchable(text: str) -> str:
    """A query Postgres can take as a parameter (full-text and trigram sources): no NUL, no
    lone surrogate (JSON may escape one, `"\\ud800"`; no UTF-8 text holds it)."""
    if "\x00" in text:
        raise PydanticCustomError("nul_character", "must not contain the NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError("invalid_unicode", "must not contain lone surrogates (not valid Unicode text)") from None
    return text


class ScopedQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=8_000)
    user_id: str | None = Field(default=None, pattern=ID_PATTERN,
                                description="whose memories; default the API key's user (an admin key may name any)")
    agent_id: str | None = ScopeId
    run_id: str | None = ScopeId
    app_id: str | None = ScopeId
    filters: dict[str, Any] | None = Field(
        default=None, description="mem0 v2 filter tree: {field: value | {op: value}}, AND / OR / NOT lists; "
                                  "fields agent_id, run_id, app_id, categories, created_at, updated_at, occurred_at, "
                                  "importance, memory_id, metadata {key: ...}; ops eq ne in nin gt gte lt lte "
                                  "contains exists")
    include_archived: bool = Field(default=False, description="also search archived (consolidated) memories")
    consistency_token: str | None = Field(default=None, max_length=4_096,
                                          description="from a command: answer only once it is applied")
    reference_time: datetime | None = Field(
        default=None, description="'now' for relative time expressions in the query (ISO 8601; default the present)")
    as_of: str | None = Field(default=None, max_length=4_096, description=AS_OF_HELP)
    include_shared: bool = Field(
        default=False, description="also the memories other users shared with this user (read-only; each result "
                                   "carries `shared`: who shared it); they match `filters` but not the scope fields, "
                                   "and such answers are never cached")

    @field_validator("reference_time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        if value is not None and not within_calendar(value):
            raise ValueError(f"must be between {FIRST_DAY} and {LAST_DAY} (exclusive) in UTC")
        return value

    @field_validator("query")
    @classmethod
    def _text(cls, value: str) -> str:
        return _searchable(value)


class SearchRequest(ScopedQuery):
    limit: int = Field(default=10, ge=1, le=100)
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0,
                                    description="minimum cosine similarity of a result to the query")
    explain: bool = Field(default=False, description="add how each result was ranked and where the time went")
    sources: list[SourceName] | None = Field(default=None, min_length=1,
                                             description="the sources to use (default all four)")
    weights: dict[SourceName, float] | None = Field(default=None, description="RRF weight per source (default "
                                                    "dense 1, sparse 1, temporal 0.5, graph 0.5)")
    rrf_k: int | None = Field(default=None, ge=0, le=1_000)
    mmr: bool = Field(default=False, description="diversify the results (maximal marginal relevance)")
    temporal: Literal["boost", "filter", "off"] = Field(
        default="boost", description="a time named in the query boosts memories of that time, or filters to them")
    cache: bool = Field(default=True, description="false: compute the answer even if a cached one exists")
    rerank: bool = _rerank()

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict | None) -> dict | None:
        for source, weight in (value or {}).items():
            if not 0 <= weight <= 10:
                raise ValueError(f"weight of {source} must be between 0 and 10")
        return value


class ContextRequest(ScopedQuery):
    max_tokens: int = Field(default=1_000, ge=16, le=32_000, description="budget of the block, counted with "
                                                                        "the tokenizer named in `encoding`")
    candidates: int = Field(default=50, ge=1, le=100, description="memories considered, best first")
    encoding: Literal["cl100k_base", "o200k_base"] = "cl100k_base"
    rerank: bool = _rerank()
