"""What each event does to the sparse index's documents, through its projection
(projectors/sparse_projection.py): into a batch's overlay over the last commit (projectors/sparse_store.Changes,
here over a dict) and into the in-memory double (projectors/in_memory_sparse.py). The Postgres read
model's state semantics, the graph's entity derivation."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from adapters.sparse_schema import MemoryDoc, memory_document, memory_from_stored, micros
from domain.entities import extract
from domain.events import (Entity, MemoryConsolidated, MemoryCreated, MemoryDeleted, MemoryExpired, MemoryForgotten,
                           MemoryRestored, MemoryScopeDeleted, MemoryUpdated, Relation, UserErased)
from domain.index_terms import entity_words
from projectors.graph_rows import graph_rows
from projectors.in_memory_sparse import InMemorySparse
from projectors.sparse_projection import HANDLERS, project, referenced_ids
from projectors.sparse_store import Changes

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
HAPPENED = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


class Committed:
    """A dict standing for the last commit."""

    def __init__(self, docs=()):
        self.docs = {d.memory_id: d for d in docs}

    def get(self, memory_id):
        return self.docs.get(memory_id)

    def of_user(self, user_id):
        return [d for d in self.docs.values() if d.user_id == user_id and d.state != "deleted"]


def created(user="alice", text="Alice uses FastAPI at Acme", **fields) -> MemoryCreated:
    return MemoryCreated(user_id=user, actor="t", memory_id=str(uuid.uuid4()), text=text, embedding=(1.0,),
                         embedding_model="m", happened_at=HAPPENED, occurred_at=T0, **fields)


def doc(memory: MemoryCreated, state="active") -> MemoryDoc:
    changes = Changes(Committed())
    project(changes, memory)
    made = changes.changed[memory.memory_id]
    return MemoryDoc(**{**made.__dict__, "state": state})


def applied(committed, *events) -> Changes:
    changes = Changes(Committed(committed))
    for event in events:
        project(changes, event)
    return changes


def test_a_create_makes_a_document_with_the_graphs_entity_words():
    memory = created(agent_id="ide", run_id="r1")
    made = applied([], memory).changed[memory.memory_id]
    ents, rels = extract(memory.text)
    mentions, _ = graph_rows(memory.user_id, memory.memory_id, ents, rels, HAPPENED)
    assert made == MemoryDoc(memory.memory_id, "alice", "active", memory.text, "ide", "r1", None,
                             tuple(entity_words(m["name"] for m in mentions)), micros(HAPPENED))
    assert {"fastapi", "acme"} <= set(made.entities)


def test_event_entities_win_and_relation_endpoints_count_as_entities():
    memory = created(text="whatever", entities=(Entity("Ana Lopes", "person"),),
                     relations=(Relation("Ana Lopes", "works_at", "Acme Corp"),))
    assert applied([], memory).changed[memory.memory_id].entities == ("ana", "lopes", "acme", "corp")


def test_a_create_never_overwrites_not_even_a_tombstone():
    memory = created()
    again = MemoryCreated(**{**memory.__dict__, "event_id": str(uuid.uuid4()), "text": "other"})
    assert applied([doc(memory)], again).changed == {}
    assert applied([doc(memory).tombstone()], again).changed == {}


def test_text_updates_replace_text_and_entities_metadata_only_changes_nothing():
    memory = created()
    update = MemoryUpdated(user_id="alice", actor="t", memory_id=memory.memory_id, text="Bob moved to Berlin")
    changed = applied([doc(memory, "archived")], update).changed[memory.memory_id]
    assert (changed.text, changed.state) == ("Bob moved to Berlin", "archived")
    assert set(changed.entities) >= {"bob", "berlin"} and "fastapi" not in changed.entities
    assert changed.occurred_us == micros(HAPPENED)
    for same in (MemoryUpdated(user_id="alice", actor="t", memory_id=memory.memory_id, metadata={"k": 1}),
                 MemoryUpdated(user_id="alice", actor="t", memory_id=memory.memory_id, text=memory.text)):
        assert applied([doc(memory)], same).changed == {}
    # someone else's, or deleted: nothing
    assert applied([doc(memory)], MemoryUpdated(user_id="mallory", actor="t", memory_id=memory.memory_id,
                                                text="x")).changed == {}
    assert applied([doc(memory).tombstone()], update).changed == {}


def test_deletes_leave_tombstones_without_content():
    keep, gone = created(), created()
    changes = applied([doc(keep), doc(gone)], MemoryDeleted(user_id="alice", actor="t", memory_id=gone.memory_id))
    assert changes.changed == {gone.memory_id: MemoryDoc(gone.memory_id, "alice", "deleted")}
    assert applied([doc(gone)], MemoryDeleted(user_id="bob", actor="t", memory_id=gone.memory_id)).changed == {}


def test_a_scope_delete_takes_the_matching_memories_that_exist_at_that_point():
    music = created(agent_id="music", run_id="r1")
    music_forgotten = created(agent_id="music", run_id="r1")
    other_run = created(agent_id="music", run_id="r2")
    code = created(agent_id="code")
    bobs = created(user="bob", agent_id="music", run_id="r1")
    later = created(agent_id="music", run_id="r1")
    scope = MemoryScopeDeleted(user_id="alice", actor="t", agent_id="music", run_id="r1")
    in_batch = created(agent_id="music", run_id="r1")
    changes = applied([doc(music), doc(music_forgotten, "forgotten"), doc(other_run), doc(code), doc(bobs)],
                      in_batch, scope, later)
    deleted = {i for i, d in changes.changed.items() if d.state == "deleted"}
    assert deleted == {music.memory_id, music_forgotten.memory_id, in_batch.memory_id}
    assert changes.changed[later.memory_id].state == "active"


def test_consolidation_archives_active_and_forgotten_sources_only_when_new():
    a, b, c, theirs = created(), created(), created(), created(user="bob")
    summary = MemoryConsolidated(user_id="alice", actor="w", memory_id=str(uuid.uuid4()), text="summary",
                                 embedding=(1.0,), embedding_model="m", reason="similar",
                                 source_memory_ids=(a.memory_id, b.memory_id, c.memory_id, theirs.memory_id))
    committed = [doc(a), doc(b, "forgotten"), doc(c).tombstone(), doc(theirs)]
    changes = applied(committed, summary)
    assert {i: d.state for i, d in changes.changed.items()} == {
        summary.memory_id: "active", a.memory_id: "archived", b.memory_id: "archived"}
    assert changes.changed[summary.memory_id].occurred_us == micros(summary.occurred_at)  # v1: no happened_at
    assert applied(committed + [MemoryDoc(summary.memory_id, "alice")], summary).changed == {}


def test_forget_and_restore_move_between_their_states():
    memory = created()
    forget = MemoryForgotten(user_id="alice", actor="w", memory_id=memory.memory_id, reason="decayed")
    restore = MemoryRestored(user_id="alice", actor="u", memory_id=memory.memory_id)
    assert applied([doc(memory)], forget).changed[memory.memory_id].state == "forgotten"
    assert applied([doc(memory, "archived")], forget).changed[memory.memory_id].state == "forgotten"
    assert applied([doc(memory, "archived")], restore).changed[memory.memory_id].state == "active"
    assert applied([doc(memory, "forgotten")], restore).changed[memory.memory_id].state == "active"
    assert applied([doc(memory)], restore).changed == {}
    assert applied([doc(memory).tombstone()], forget).changed == {}


def test_erasure_drops_the_users_documents_committed_and_in_the_batch_and_later_ones_stay():
    old, bobs = created(), created(user="bob")
    before, after = created(), created()
    changes = applied([doc(old), MemoryDoc(str(uuid.uuid4()), "alice", "deleted"), doc(bobs)],
                      before, UserErased(user_id="alice", actor="admin"), after)
    assert changes.erased == {"alice"}
    assert changes.changed[before.memory_id] is None
    assert changes.changed[after.memory_id].text == after.text
    assert changes.get(old.memory_id) is None and changes.get(bobs.memory_id) == doc(bobs)
    assert [d.memory_id for d in changes.of_user("alice")] == [after.memory_id]


def test_referenced_ids_are_every_memory_an_event_names():
    a, b = created(), created()
    summary = MemoryConsolidated(user_id="alice", actor="w", memory_id="s", text="s", embedding=(1.0,),
                                 embedding_model="m", reason="r", source_memory_ids=(a.memory_id, b.memory_id))
    assert referenced_ids([a, summary, None, UserErased(user_id="x", actor="y")]) == {a.memory_id, b.memory_id, "s"}


def test_a_turns_context_is_kept_by_text_updates_and_dropped_by_deletes():
    memory = created(context="Nate: did you see the Perseid shower?")
    made = applied([], memory).changed[memory.memory_id]
    assert made.context == "Nate: did you see the Perseid shower?"
    update = MemoryUpdated(user_id="alice", actor="t", memory_id=memory.memory_id, text="yes, from the roof")
    assert applied([made], update).changed[memory.memory_id].context == made.context
    delete = MemoryDeleted(user_id="alice", actor="t", memory_id=memory.memory_id)
    assert applied([made], delete).changed[memory.memory_id].context == ""


def test_a_document_is_rebuilt_from_its_stored_fields():
    memory = doc(created(agent_id="ide", app_id="app", context="the turn before"))
    stored = memory_document(memory).to_dict()
    assert memory_from_stored(stored) == memory
    tombstone = memory.tombstone()
    assert memory_from_stored(memory_document(tombstone).to_dict()) == tombstone


# --- the in-memory double: the same rules, written at once -----------------------------------------


def double(*events) -> InMemorySparse:
    docs = InMemorySparse()
    for event in events:
        project(docs, event)
    return docs


def test_the_double_takes_every_memory_event_as_the_overlay_does():
    a, b, c, d = created(), created(agent_id="x"), created(), created()
    summary = MemoryConsolidated(user_id="alice", actor="w", memory_id=str(uuid.uuid4()), text="summary",
                                 embedding=(1.0,), embedding_model="m", reason="similar",
                                 source_memory_ids=(a.memory_id, c.memory_id))
    events = [a, b, c, d, created(user="bob"),
              MemoryUpdated(user_id="alice", actor="t", memory_id=a.memory_id, text="Bob moved to Berlin"),
              MemoryForgotten(user_id="alice", actor="w", memory_id=c.memory_id, reason="decayed"), summary,
              MemoryScopeDeleted(user_id="alice", actor="t", agent_id="x"),
              MemoryDeleted(user_id="alice", actor="t", memory_id=d.memory_id),
              MemoryRestored(user_id="alice", actor="t", memory_id=a.memory_id),
              MemoryExpired(user_id="alice", actor="w", memory_id=summary.memory_id, expires_at=summary.occurred_at)]
    docs = double(*events)
    assert {i: x.state for i, x in docs.docs.items() if x.user_id == "alice"} == {
        a.memory_id: "active", b.memory_id: "deleted", c.memory_id: "archived", d.memory_id: "deleted",
        summary.memory_id: "forgotten"}
    assert docs.docs[a.memory_id].text == "Bob moved to Berlin" and "berlin" in docs.docs[a.memory_id].entities
    assert docs.docs[b.memory_id] == MemoryDoc(b.memory_id, "alice", "deleted")
    assert {i: x for i, x in applied([], *events).changed.items()} == docs.docs
    assert set(HANDLERS) == {MemoryCreated, MemoryConsolidated, MemoryUpdated, MemoryDeleted, MemoryScopeDeleted,
                             MemoryForgotten, MemoryExpired, MemoryRestored, UserErased}


def test_the_double_forgets_an_erased_user_entirely():
    mine, theirs = created(), created(user="bob")
    docs = double(mine, MemoryDeleted(user_id="alice", actor="t", memory_id=mine.memory_id), theirs,
                  UserErased(user_id="alice", actor="admin"))
    assert list(docs.docs) == [theirs.memory_id]
    assert docs.get(mine.memory_id) is None and docs.of_user("alice") == []
