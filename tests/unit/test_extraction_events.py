"""The extraction worker's pure parts: repeats within a conversation, and the events that
carry out decisions (ids derived from the conversation, causation, scope, provenance)."""

from datetime import datetime, timezone

import numpy as np

from consolidation.extraction import derived_id, drop_repeats, events_for
from domain.events import ChatMessage, ConversationReceived, MemoryCreated, MemoryDeleted, MemoryUpdated
from domain.intelligence import Decision, Fact
from tests.unit.fakes import FakeEmbedder

MEMORY = "6f1c1f7e-3a51-4f57-8d0e-8b1f2f0b4a10"
CONVERSATION = ConversationReceived(
    user_id="u", actor="user:u", conversation_id="c-1", happened_at=datetime(2025, 1, 2, tzinfo=timezone.utc),
    messages=(ChatMessage("user", "I moved to Lyon. I use Vim."),), app_id="chat", metadata={"channel": "slack"})


def unit(*values):
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_a_fact_repeating_an_earlier_kept_one_becomes_none_and_others_stay():
    facts = [Fact("likes tea"), Fact("really likes tea"), Fact("uses vim"), Fact("likes tea a lot")]
    vectors = np.stack([unit(1, 0), unit(0.99, 0.05), unit(0, 1), unit(0.7, 0.7)])
    decisions = [Decision("ADD", f, "new") for f in facts]
    out = drop_repeats(decisions, vectors, duplicate_at=0.9)
    assert [d.action for d in out] == ["ADD", "NONE", "ADD", "ADD"]
    assert out[1].reason.startswith("repeats fact #0 of this conversation")


def test_a_none_or_delete_is_never_a_reference_for_repeats():
    facts = [Fact("likes tea"), Fact("likes tea")]
    vectors = np.stack([unit(1, 0), unit(1, 0)])
    out = drop_repeats([Decision("NONE", facts[0], "known", memory_id=MEMORY), Decision("ADD", facts[1], "new")],
                       vectors, 0.9)
    assert [d.action for d in out] == ["NONE", "ADD"]


def test_events_carry_out_decisions_with_derived_ids_causation_scope_and_provenance():
    embedder = FakeEmbedder()
    facts = [Fact("I moved to Lyon", (0,), importance=0.5, categories=("personal",)), Fact("I use Vim", (0,)),
             Fact("I live in Paris", (0,)), Fact("I like tea", (0,))]
    decisions = [Decision("ADD", facts[0], "new"), Decision("UPDATE", facts[1], "newer", memory_id=MEMORY),
                 Decision("DELETE", facts[2], "retracted", memory_id=MEMORY), Decision("NONE", facts[3], "known")]
    vectors = embedder.embed([f.text for f in facts])
    events = events_for(CONVERSATION, decisions, vectors, embedder.model_id, "worker:extract", embedder.embed_one)
    created, updated, deleted = events
    assert isinstance(created, MemoryCreated) and isinstance(updated, MemoryUpdated)
    assert isinstance(deleted, MemoryDeleted)
    assert created.memory_id == derived_id(CONVERSATION.event_id, "memory", 0)
    assert [e.event_id for e in events] == [derived_id(CONVERSATION.event_id, "event", i) for i in (0, 1, 2)]
    assert all(e.causation_id == CONVERSATION.event_id and e.correlation_id == CONVERSATION.correlation_id
               and e.actor == "worker:extract" for e in events)
    assert (created.app_id, created.happened_at, created.importance) == ("chat", CONVERSATION.happened_at, 0.5)
    assert created.metadata == {"channel": "slack", "source": {"conversation_id": "c-1", "message_indexes": [0],
                                                               "reason": "new"}}
    assert created.embedding == tuple(float(x) for x in vectors[0])
    assert updated.memory_id == MEMORY and updated.text == "I use Vim" and updated.reason == "newer"
    again = events_for(CONVERSATION, decisions, vectors, embedder.model_id, "worker:extract", embedder.embed_one)
    assert [e.event_id for e in again] == [e.event_id for e in events], "a redo derives the same ids"


def test_a_decision_that_rewrites_the_text_embeds_the_new_text():
    embedder = FakeEmbedder()
    fact = Fact("lives in lyon")
    [event] = events_for(CONVERSATION, [Decision("ADD", fact, "new", text="The user lives in Lyon")],
                         embedder.embed([fact.text]), embedder.model_id, "worker:extract", embedder.embed_one)
    assert event.text == "The user lives in Lyon"
    assert event.embedding == tuple(float(x) for x in embedder.embed_one("The user lives in Lyon"))
