"""LlamaIndex integration: a retriever over recallstack search and a long-term memory block
for llama_index's `Memory` (`pip install "recallstack-sdk[llamaindex]"`, llama-index-core 0.14).

    from llama_index.core.memory import Memory
    from recallstack import Client
    from recallstack.integrations.llamaindex import RecallstackMemoryBlock, RecallstackRetriever

    client = Client()
    retriever = RecallstackRetriever(client, user_id="alice", similarity_top_k=5)
    memory = Memory.from_defaults(session_id="chat-1", token_limit=4000,
                                  memory_blocks=[RecallstackMemoryBlock(client=client, user_id="alice")])

The block answers `Memory.aget()` with recallstack's token-budgeted context block for the
latest messages, and stores the messages the short-term memory flushes to it (one memory
per user or assistant message, or fact extraction with `infer=True`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock
from llama_index.core.bridge.pydantic import ConfigDict, Field
from llama_index.core.memory.memory import BaseMemoryBlock
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from recallstack.client import Client
from recallstack.types import Memory

__all__ = ["RecallstackRetriever", "RecallstackMemoryBlock", "memory_to_node"]

_NODE_FIELDS = ("score", "similarity", "created_at", "occurred_at", "categories", "agent_id", "run_id", "app_id")
_NOT_FOR_LLM = ("score", "similarity", "agent_id", "run_id", "app_id")


def memory_to_node(memory: Memory) -> NodeWithScore:
    """A recallstack memory as a scored llama_index node (the node id is the memory id)."""
    metadata = {name: memory[name] for name in _NODE_FIELDS if memory.get(name) not in (None, [])}
    metadata.update({f"metadata.{key}": value for key, value in memory.metadata.items()})
    # What an LLM reads of a node: its text, times and categories (not the scores or the scope ids).
    node = TextNode(id_=memory.id, text=memory.memory, metadata=metadata,
                    excluded_llm_metadata_keys=[k for k in metadata if k in _NOT_FOR_LLM],
                    excluded_embed_metadata_keys=list(metadata))
    return NodeWithScore(node=node, score=memory.score)


class RecallstackRetriever(BaseRetriever):
    """Hybrid search over a user's recallstack memories, as a llama_index retriever (usable
    by query engines, `RetrieverTool`, chat engines...). Scores are recallstack's fused
    scores (1.0 about first in every search source, higher is better); `filters` are mem0's
    v2 shape; `search_kwargs` passes the query API's other knobs."""

    def __init__(self, client: Client, *, user_id: str | None = None, agent_id: str | None = None,
                 run_id: str | None = None, app_id: str | None = None, filters: dict[str, Any] | None = None,
                 threshold: float | None = None, similarity_top_k: int = 5,
                 search_kwargs: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.client = client
        self.user_id, self.agent_id, self.run_id, self.app_id = user_id, agent_id, run_id, app_id
        self.filters, self.threshold, self.similarity_top_k = filters, threshold, similarity_top_k
        self.search_kwargs = search_kwargs or {}

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        found = self.client.search(query_bundle.query_str, user_id=self.user_id, agent_id=self.agent_id,
                                   run_id=self.run_id, app_id=self.app_id, filters=self.filters,
                                   threshold=self.threshold, limit=self.similarity_top_k, **self.search_kwargs)
        return [memory_to_node(memory) for memory in found.results]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)


def _text(message: ChatMessage) -> str:
    return " ".join(block.text for block in message.blocks if isinstance(block, TextBlock)).strip()


class RecallstackMemoryBlock(BaseMemoryBlock[str]):
    """Long-term memory for llama_index's `Memory`: recallstack memories relevant to the
    conversation, as recallstack's context block (at most `max_tokens`).

    aget: the text of the last `retrieval_context_window` messages is the query of
    `client.get_context`; nothing is returned when no memory is relevant.
    aput: the user and assistant messages `Memory` flushes from its short-term queue are
    added as the user's memories (`run_id` = the memory's session id), stored as given, or
    with `infer=True` sent for fact extraction (the server's extractor)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = Field(default="recallstack", description="The name of the memory block.")
    client: Client = Field(description="The recallstack client.")
    user_id: str | None = Field(default=None, description="Whose memories (default: the API key's user).")
    agent_id: str | None = None
    app_id: str | None = None
    max_tokens: int = Field(default=500, description="Token budget of the context block (16-32,000).")
    retrieval_context_window: int = Field(default=5, description="How many latest messages make the query.")
    infer: bool | None = Field(default=None, description="Extract facts from flushed messages (server default).")

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        query = " ".join(filter(None, (_text(m) for m in (messages or [])[-self.retrieval_context_window:])))
        if not query:
            return ""
        context = await asyncio.to_thread(self.client.get_context, query, user_id=self.user_id,
                                          agent_id=self.agent_id, app_id=self.app_id, max_tokens=self.max_tokens)
        return context.context if context.memories else ""

    async def _aput(self, messages: list[ChatMessage]) -> None:
        kept = [(m, _text(m)) for m in messages if m.role in (MessageRole.USER, MessageRole.ASSISTANT)]
        kept = [(m, text) for m, text in kept if text]
        if not kept:
            return
        session = next((m.additional_kwargs.get("session_id") for m, _ in kept
                        if m.additional_kwargs.get("session_id")), None)
        await asyncio.to_thread(self.client.add, [{"role": m.role.value, "content": text} for m, text in kept],
                                user_id=self.user_id, agent_id=self.agent_id, app_id=self.app_id, run_id=session,
                                infer=self.infer)
