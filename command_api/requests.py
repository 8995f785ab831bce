"""Request bodies of the command API (pydantic validates and names the bad field)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_TEXT_CHARS = 32_000
MAX_ID_CHARS = 255


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant", "system", "tool"]
    content: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class AddMemoryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    messages: list[Message] | None = Field(default=None, max_length=200)
    user_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    agent_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)
    run_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)
    app_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)
    metadata: dict = Field(default_factory=dict)
    categories: list[str] = Field(default_factory=list, max_length=32)
    importance: float | None = Field(default=None, ge=0.0, le=1.0)
    occurred_at: datetime | None = None
    infer: bool | None = None

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)  # naive times are taken as UTC, as documented
        return value

    @model_validator(mode="after")
    def _one_source(self):
        if (self.text is None) == (self.messages is None):
            raise ValueError("give exactly one of `text` or `messages`")
        if self.messages is not None and not self.messages:
            raise ValueError("`messages` must not be empty")
        return self

    def texts(self) -> list[tuple[str, dict]]:
        """The memories this add creates, each with its extra metadata.

        Without an LLM (infer off) each message becomes one memory, as mem0 does with
        infer=False; the role is kept in metadata.
        """
        if self.text is not None:
            return [(self.text, {})]
        return [(m.content, {"role": m.role}) for m in self.messages or []]
