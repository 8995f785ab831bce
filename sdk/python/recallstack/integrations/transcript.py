"""A conversation's messages kept as recallstack memories, in order: the chat-history stores
of the integrations (LangChain's message history, the Agents SDK's session) are this plus
their framework's message format.

Why memories and not a separate store: the history of a session is then searchable like
anything else the user's agents remember. Each message is one memory of the user with
`run_id` = the session id, the role and the framework's own serialised form in metadata
(`recallstack_transcript` names the framework, so a session read back holds only its own
messages), stored as given (`infer=False`). Order comes from `occurred_at`, one microsecond
apart within a call and never before the last message this object wrote.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from recallstack.client import Client
from recallstack.types import Memory

TRANSCRIPT_KEY = "recallstack_transcript"  # metadata key: which integration wrote the message
_PAGE = 1000  # the list endpoint's largest page


class Transcript:
    """The messages of one session (`run_id`) of one user, written and read in order."""

    def __init__(self, client: Client, session_id: str, kind: str, *, user_id: str | None = None,
                 agent_id: str | None = None, app_id: str | None = None):
        self.client = client
        self.session_id = session_id
        self.kind = kind
        self.user_id = user_id
        self.agent_id = agent_id
        self.app_id = app_id
        self._last: datetime | None = None
        self._lock = threading.Lock()

    def append(self, entries: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
        """Store (text, metadata) messages after the session's others; returns their ids."""
        ids = []
        with self._lock:
            for text, metadata in entries:
                at = datetime.now(timezone.utc)
                if self._last is not None and at <= self._last:
                    at = self._last + timedelta(microseconds=1)
                self._last = at
                result = self.client.add(text, user_id=self.user_id, agent_id=self.agent_id, run_id=self.session_id,
                                         app_id=self.app_id, metadata={**metadata, TRANSCRIPT_KEY: self.kind},
                                         occurred_at=at, infer=False)
                ids.extend(result.ids)
        return ids

    def read(self, limit: int | None = None) -> list[Memory]:
        """The session's messages oldest first; with `limit`, only the latest `limit` of them."""
        if limit is not None:
            if limit <= 0:
                return []
            newest: list[Memory] = []
            page, size = 1, min(_PAGE, limit)
            while len(newest) < limit:
                got = self._page(page, size, "desc")
                newest.extend(got.results)
                if not got.has_more:
                    break
                page += 1
            return list(reversed(newest[:limit]))
        found: list[Memory] = []
        page = 1
        while True:
            got = self._page(page, _PAGE, "asc")
            found.extend(got.results)
            if not got.has_more:
                return found
            page += 1

    def clear(self) -> None:
        """Delete every message of the session (what this integration wrote under that run_id)."""
        for memory in self.read():
            self.client.delete(memory.id, user_id=self.user_id)

    def _page(self, page: int, size: int, order: str):
        return self.client.get_all(user_id=self.user_id, agent_id=self.agent_id, run_id=self.session_id,
                                   app_id=self.app_id, filters={"metadata": {TRANSCRIPT_KEY: self.kind}},
                                   page=page, page_size=size, sort="occurred_at", order=order)
