"""Request bodies of the query API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

ID = Field(default=None, min_length=1, max_length=255)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=8_000)
    user_id: str = Field(min_length=1, max_length=255)
    agent_id: str | None = ID
    run_id: str | None = ID
    app_id: str | None = ID
    limit: int = Field(default=10, ge=1, le=100)
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0)
    consistency_token: str | None = Field(default=None, max_length=4_096)
