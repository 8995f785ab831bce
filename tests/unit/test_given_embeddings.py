"""An add that brings its vector (what `recallstack import` sends): used as is only when it is
of the embedder's model and dimension; anything else is refused, never silently trusted."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from application import command_handlers as handlers
from application.requests import AddMemoryRequest
from domain.commands import AddMemory
from tests.unit.fakes import FakeEmbedder, FakeMemories, FakePublisher

UNIT8 = tuple([1 / math.sqrt(8)] * 8)


class CountingEmbedder(FakeEmbedder):
    def __init__(self):
        self.embedded: list[str] = []

    def embed(self, texts):
        self.embedded += list(texts)
        return super().embed(texts)


def context():
    return handlers.CommandContext(embedder=CountingEmbedder(), publisher=FakePublisher(), memories=FakeMemories(),
                                   correlation_id="req-1")


def add(text: str, **over) -> AddMemory:
    return AddMemory(user_id="alice", actor="user:alice", text=text, **over)


async def test_a_vector_of_the_embedders_model_and_dimension_is_used_as_is():
    ctx = context()
    events, _ = await handlers.add_memories(
        [add("given", embedding=UNIT8, embedding_model="fake-hash-embedder"), add("embedded here")], ctx,
        context_turns=0)  # as imports send: with context, the second would be embedded with the first's text
    assert ctx.embedder.embedded == ["embedded here"]  # only the one without a vector
    assert events[0].embedding == UNIT8 and events[0].embedding_model == "fake-hash-embedder"
    assert events[1].embedding == tuple(FakeEmbedder().embed(["embedded here"])[0].tolist())
    assert [e.text for e in ctx.publisher.events] == ["given", "embedded here"]


async def test_all_given_vectors_embed_nothing():
    ctx = context()
    await handlers.add_memories([add("a", embedding=UNIT8, embedding_model="fake-hash-embedder")], ctx)
    assert ctx.embedder.embedded == []


@pytest.mark.parametrize("over, field", [
    ({"embedding": UNIT8, "embedding_model": "openai:text-embedding-3-small"}, "embedding_model"),
    ({"embedding": UNIT8[:4], "embedding_model": "fake-hash-embedder"}, "embedding"),
    ({"embedding": UNIT8 + (0.0,), "embedding_model": "fake-hash-embedder"}, "embedding"),
])
async def test_a_vector_of_another_model_or_dimension_refuses_the_whole_call(over, field):
    ctx = context()
    with pytest.raises(handlers.EmbeddingMismatch) as info:
        await handlers.add_memories([add("fine"), add("bad", **over)], ctx)
    assert (info.value.index, info.value.field) == (1, field)
    assert field in str(info.value)
    assert ctx.publisher.events == [] and ctx.embedder.embedded == []  # refused before any work


def test_the_request_takes_embedding_and_model_together_with_text_only():
    ok = AddMemoryRequest(user_id="u", text="t", embedding=list(UNIT8), embedding_model="m")
    assert ok.embedding == list(UNIT8)
    with pytest.raises(ValidationError, match="together"):
        AddMemoryRequest(user_id="u", text="t", embedding=list(UNIT8))
    with pytest.raises(ValidationError, match="together"):
        AddMemoryRequest(user_id="u", text="t", embedding_model="m")
    with pytest.raises(ValidationError, match="not with `messages`"):
        AddMemoryRequest(user_id="u", messages=[{"role": "user", "content": "x"}], embedding=list(UNIT8),
                         embedding_model="m")


@pytest.mark.parametrize("vector, problem", [
    ([1.0, 1.0], "L2-normalised"),
    ([0.0, 0.0], "L2-normalised"),
    ([float("nan"), 1.0], "finite"),
    ([], "at least 1"),
])
def test_a_bad_vector_is_refused_naming_embedding(vector, problem):
    with pytest.raises(ValidationError) as info:
        AddMemoryRequest(user_id="u", text="t", embedding=vector, embedding_model="m")
    assert info.value.errors()[0]["loc"][0] == "embedding"
    assert problem in str(info.value)
