"""LangChain integration: a retriever over recallstack search and a chat-message history
kept as recallstack memories (`pip install "recallstack-sdk[langchain]"`, langchain-core 1.x).

    from recallstack import Client
    from recallstack.integrations.langchain import RecallstackChatMessageHistory, RecallstackRetriever

    client = Client()                                   # $RECALLSTACK_URL, $RECALLSTACK_API_KEY
    retriever = RecallstackRetriever(client=client, user_id="alice", k=5)
    docs = retriever.invoke("which editor theme does alice like?")
    history = RecallstackChatMessageHistory("session-42", client=client, user_id="alice")

The retriever is a Runnable like any other (chains, `RunnableWithMessageHistory`...). Each
Document's `page_content` is the memory's text, its `metadata` the memory's id, score,
similarity, times, categories and the memory's own metadata (under `metadata`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from recallstack.client import Client
from recallstack.integrations.transcript import Transcript
from recallstack.types import Memory

__all__ = ["RecallstackRetriever", "RecallstackChatMessageHistory", "memory_to_document"]

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"}


def memory_to_document(memory: Memory) -> Document:
    """A recallstack memory as a LangChain Document (the memory's JSON fields in metadata)."""
    fields = ("id", "score", "similarity", "created_at", "updated_at", "occurred_at", "categories", "metadata",
              "agent_id", "run_id", "app_id", "importance")
    return Document(page_content=memory.memory, id=memory.id,
                    metadata={name: memory[name] for name in fields if memory.get(name) is not None})


class RecallstackRetriever(BaseRetriever):
    """Hybrid search over a user's recallstack memories, as a LangChain retriever.

    `client`: a `recallstack.Client`; `user_id` (default: the client's, else the API key's
    user); optional `agent_id`, `run_id`, `app_id`, `filters` (mem0's v2 shape), `threshold`
    (minimum cosine similarity); `k` results (1-100); `search_kwargs` passes the query API's
    other knobs (sources, weights, mmr, include_shared...)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: Client
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    app_id: str | None = None
    filters: dict[str, Any] | None = None
    threshold: float | None = None
    k: int = 5
    search_kwargs: dict[str, Any] = {}

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        found = self.client.search(query, user_id=self.user_id, agent_id=self.agent_id, run_id=self.run_id,
                                   app_id=self.app_id, filters=self.filters, threshold=self.threshold, limit=self.k,
                                   **self.search_kwargs)
        return [memory_to_document(memory) for memory in found.results]


class RecallstackChatMessageHistory(BaseChatMessageHistory):
    """The messages of one conversation (`session_id`), each stored as a memory of the user.

    A message becomes a memory whose text is the message's text (a tool-call-only message
    gets a short description instead), with `run_id` = session_id and LangChain's own
    serialised message in metadata (`langchain_message`), so tool calls, ids and names come
    back as they went in. `clear()` deletes the session's messages; the user's other
    memories stay. The messages are searchable memories too (a retriever may exclude them
    with the filter `{"NOT": [{"metadata": {"recallstack_transcript": {"exists": true}}}]}`)."""

    def __init__(self, session_id: str, *, client: Client | None = None, user_id: str | None = None,
                 agent_id: str | None = None, app_id: str | None = None):
        super().__init__()
        self.client = client or Client()
        self.session_id = session_id
        self._transcript = Transcript(self.client, session_id, "langchain", user_id=user_id, agent_id=agent_id,
                                      app_id=app_id)

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        return [_message(memory) for memory in self._transcript.read()]

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        self._transcript.append([_entry(message) for message in messages])

    def clear(self) -> None:
        self._transcript.clear()


def _entry(message: BaseMessage) -> tuple[str, dict[str, Any]]:
    stored = message_to_dict(message)
    text = message.content if isinstance(message.content, str) and message.content.strip() else ""
    if text:  # the text is the memory: not stored twice (metadata holds at most 16 KB)
        stored["data"].pop("content")
    else:  # content blocks, or an AI message that only calls tools: the memory gets a readable text
        calls = ", ".join(call["name"] for call in getattr(message, "tool_calls", None) or [])
        text = str(message.text).strip() or (f"({message.type} message calling {calls})" if calls
                                             else f"(empty {message.type} message)")
    return text, {"role": _ROLES.get(message.type, message.type),
                  "langchain_message": json.dumps(stored, separators=(",", ":"), default=str)}


def _message(memory: Memory) -> BaseMessage:
    stored = json.loads(memory.metadata.get("langchain_message") or "{}")
    if not stored:  # not written by this class: the role and the text
        stored = {"type": "ai" if memory.metadata.get("role") == "assistant" else "human", "data": {}}
    stored["data"].setdefault("content", memory.memory)
    return messages_from_dict([stored])[0]
