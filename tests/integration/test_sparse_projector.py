"""The sparse index (Tantivy) against real events: SparseProjector writes a version under a
directory of the test's own, SparseIndex reads it; Kafka for the replay beside the live
version, the switch and the live projector's relocation."""

from __future__ import annotations

import asyncio
import multiprocessing
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import tantivy
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from adapters import sparse_layout, sparse_schema
from adapters.kafka_log import EventPublisher
from adapters.sparse_index import HUB_MIN, SparseIndex, SparseUnavailable
from domain.events import (Entity, MemoryConsolidated, MemoryCreated, MemoryDeleted, MemoryForgotten, MemoryRestored,
                           MemoryScopeDeleted, MemoryUpdated, UserErased)
from projectors import sparse_digest
from projectors.replay import replay
from projectors.applied import Applied, Relocated
from projectors.runner import ProjectorRunner
from projectors.sparse_projector import SparseBusy, SparseOutdated, SparseProjector
from projectors.sparse_versions import SparseVersions

pytestmark = pytest.mark.integration

TOPIC = "recallstack.memory.events"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def created(user_id: str, text: str, minute: int = 0, **fields) -> MemoryCreated:
    return MemoryCreated(user_id=user_id, actor=f"user:{user_id}", memory_id=str(uuid.uuid4()), text=text,
                         embedding=(0.6, 0.8), embedding_model="minilm", occurred_at=T0 + timedelta(minutes=minute),
                         happened_at=fields.pop("happened_at", T0 + timedelta(days=minute)), **fields)


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "sparse"


@pytest.fixture
async def versions(root) -> SparseVersions:
    versions = SparseVersions(root)
    await versions.live_version()
    return versions


@pytest.fixture
def reader(root) -> SparseIndex:
    return SparseIndex(root)


class Log:
    """Feeds a projector batches at increasing offsets of one partition; `reader` then takes
    the commit at once (a search would too, before it answers)."""

    def __init__(self, projector: SparseProjector, reader: SparseIndex | None = None, partition: int = 0):
        self.projector, self.reader, self.partition, self.offset = projector, reader, partition, -1

    async def apply(self, *events) -> int:
        batch = []
        for event in events:
            self.offset += 1
            batch.append(Applied(self.partition, self.offset, event))
        await self.projector.apply_batch(TOPIC, batch)
        if self.reader is not None:
            self.reader.refresh()
        return self.offset


def ids(hits) -> list[str]:
    return [memory_id for memory_id, _score in hits]


def find(reader: SparseIndex, user_id: str, *words, include_archived=False, **fields) -> list[str]:
    reader.refresh()
    return ids(reader.search(user_id, list(words), [], fields, include_archived, None, 50))


def grep(root: Path, marker: str) -> list[str]:
    done = subprocess.run(["grep", "-rlF", marker, str(root)], capture_output=True, text=True)
    return done.stdout.split()


# --- what events do ------------------------------------------------------------------------


async def test_every_event_changes_the_documents_as_postgres_does(versions, reader, user_id):
    log = Log(versions.projection(), reader)
    vim = created(user_id, "Alice edits code in vim", agent_id="ide", run_id="r1")
    jazz = created(user_id, "Alice listens to jazz", agent_id="music", run_id="r1")
    tea = created(user_id, "Alice drinks green tea", agent_id="music", run_id="r2")
    theirs = created(user_id + "-b", "Bob listens to jazz too", agent_id="music", run_id="r1")
    await log.apply(vim, jazz, tea, theirs)
    assert reader.available() and reader.version() == 1
    assert find(reader, user_id, "jazz") == [jazz.memory_id]
    assert find(reader, user_id, "alice") and set(find(reader, user_id, "alice")) == {
        vim.memory_id, jazz.memory_id, tea.memory_id}
    assert find(reader, user_id, "alice", agent_id="music", run_id="r2") == [tea.memory_id]

    # A text update: searchable by the new words only; a metadata-only update changes nothing.
    await log.apply(MemoryUpdated(user_id=user_id, actor="u", memory_id=vim.memory_id, text="Alice edits in emacs"),
                    MemoryUpdated(user_id=user_id, actor="u", memory_id=jazz.memory_id, metadata={"k": 1}),
                    MemoryUpdated(user_id=user_id + "-b", actor="u", memory_id=tea.memory_id, text="stolen"))
    assert find(reader, user_id, "emacs") == [vim.memory_id] and find(reader, user_id, "vim") == []
    assert find(reader, user_id, "jazz") == [jazz.memory_id] and find(reader, user_id, "tea") == [tea.memory_id]

    # Forget hides, restore brings back; a consolidation archives its sources.
    await log.apply(MemoryForgotten(user_id=user_id, actor="w", memory_id=tea.memory_id, reason="decayed"))
    assert find(reader, user_id, "tea") == [] and find(reader, user_id, "tea", include_archived=True) == []
    await log.apply(MemoryRestored(user_id=user_id, actor="u", memory_id=tea.memory_id))
    assert find(reader, user_id, "tea") == [tea.memory_id]
    summary = MemoryConsolidated(user_id=user_id, actor="w", memory_id=str(uuid.uuid4()),
                                 source_memory_ids=(jazz.memory_id, tea.memory_id), text="Alice likes jazz and tea",
                                 embedding=(0.6, 0.8), embedding_model="minilm", reason="similar", agent_id="music")
    await log.apply(summary)
    assert find(reader, user_id, "jazz") == [summary.memory_id]
    assert set(find(reader, user_id, "jazz", include_archived=True)) == {summary.memory_id, jazz.memory_id}

    # Deletes: one, then a scope (archived ones included); the other user's stay.
    await log.apply(MemoryDeleted(user_id=user_id, actor="u", memory_id=vim.memory_id))
    assert find(reader, user_id, "emacs") == []
    await log.apply(MemoryScopeDeleted(user_id=user_id, actor="u", agent_id="music"))
    assert find(reader, user_id, "alice", include_archived=True) == []
    assert find(reader, user_id + "-b", "jazz") == [theirs.memory_id]

    # A create of an id that existed (deleted since) never brings it back.
    await log.apply(MemoryCreated(**{**jazz.__dict__, "event_id": str(uuid.uuid4())}))
    assert find(reader, user_id, "jazz", include_archived=True) == []
    assert reader.positions(TOPIC) == {0: log.offset}


async def test_positions_commit_with_the_data_and_a_failing_batch_leaves_neither(versions, reader, user_id):
    projector = versions.projection()
    good = created(user_id, "the good memory")
    poison = created(user_id, "the poison \ud800 memory")  # a lone surrogate: Tantivy refuses the text
    await projector.apply_batch(TOPIC, [Applied(3, 10, created(user_id, "first"))])
    with pytest.raises(Exception):
        await projector.apply_batch(TOPIC, [Applied(3, 11, good), Applied(3, 12, poison)])
    assert reader.positions(TOPIC) == {3: 10} and find(reader, user_id, "good") == []
    # What the runner does next: one by one, the poison dead-lettered (only its position moves).
    await projector.apply_batch(TOPIC, [Applied(3, 11, good)])
    await projector.apply_batch(TOPIC, [Applied(3, 12, None)])
    assert reader.positions(TOPIC) == {3: 12} and find(reader, user_id, "good") == [good.memory_id]
    # Positions never go back; a redelivered batch changes nothing.
    await projector.apply_batch(TOPIC, [Applied(3, 11, good), Applied(5, 0, None)])
    assert reader.positions(TOPIC) == {3: 12, 5: 0}


async def test_one_writer_per_version(versions, user_id):
    first, second = versions.projection(), versions.projection()
    await first.apply_batch(TOPIC, [Applied(0, 0, created(user_id, "one"))])
    with pytest.raises(SparseBusy):
        await second.apply_batch(TOPIC, [Applied(0, 1, created(user_id, "two"))])
    assert SparseBusy in second.transient_errors
    first.close()
    await second.apply_batch(TOPIC, [Applied(0, 1, created(user_id, "two"))])


# --- searching -----------------------------------------------------------------------------


async def test_a_users_hits_are_never_lost_to_other_users(versions, reader, user_id):
    others = [created(f"{user_id}-{n % 7}", "coffee coffee coffee, more coffee") for n in range(600)]
    mine = created(user_id, "a cup of coffee in the morning")
    await Log(versions.projection(), reader).apply(*others, mine)
    assert ids(reader.search(user_id, ["coffee"], [], {}, False, None, 3)) == [mine.memory_id]


async def test_a_users_rare_term_ranks_first_whatever_other_users_say(versions, reader, user_id):
    """Every memory of this user mentions Python, one mentions zebras; everyone else talks of
    zebras. By index-wide statistics "python" is the rare word and would rank the user's
    other memories first; by the user's own, "zebra" is."""
    mine = [created(user_id, f"python note {n}: python tips") for n in range(40)]
    zebra = created(user_id, "saw a zebra at the zoo")
    crowd = [created(f"{user_id}-{n % 11}", f"zebra fact {n}") for n in range(800)]
    await Log(versions.projection(), reader).apply(*mine, zebra, *crowd)
    hits = reader.search(user_id, ["python", "zebra"], [], {}, False, None, 10)
    assert ids(hits)[0] == zebra.memory_id
    # The control: Tantivy's own BM25 (index-wide idf) puts it below the user's Python notes.
    index = sparse_schema.open_index(sparse_layout.version_dir(versions.root, 1))
    index.reload()
    searcher = index.searcher()
    plain = tantivy.Query.boolean_query([
        (tantivy.Occur.Must, sparse_schema.term("user_id", user_id)),
        (tantivy.Occur.Must, index.parse_query("python zebra", ["text"]))])
    top = searcher.doc(searcher.search(plain, limit=1).hits[0][1])["memory_id"][0]
    assert top != zebra.memory_id


async def test_a_turns_context_finds_it_below_the_turns_that_say_it_themselves(versions, reader, user_id):
    """"Yes, that one!" answers a question about the Perseid shower asked a turn before: a search
    for the shower finds the answer through its context, after the turn that names it."""
    asked = created(user_id, "Nate: did you see the Perseid meteor shower?")
    answer = created(user_id, "Joanna: yes, that one! I stayed up till 3am",
                     context="Nate: did you see the Perseid meteor shower?")
    other = created(user_id, "Joanna: I adopted a turtle")
    await Log(versions.projection(), reader).apply(asked, answer, other)
    assert find(reader, user_id, "perseid", "shower") == [asked.memory_id, answer.memory_id]
    assert find(reader, user_id, "stayed", "3am") == [answer.memory_id]
    stored = sparse_schema.open_index(sparse_layout.version_dir(versions.root, 1))
    stored.reload()
    searcher = stored.searcher()
    hit = searcher.search(sparse_schema.term("memory_id", answer.memory_id), limit=1).hits[0][1]
    assert sparse_schema.memory_from_stored(searcher.doc(hit).to_dict()).context == answer.context


async def test_names_identifiers_and_misspellings_are_found(versions, reader, user_id):
    build = created(user_id, "The nightly build runs tools/release_build.sh on the CI box")
    caroline = created(user_id, "Caroline went to the support group")
    code = created(user_id, "the bug was in getUserName of the session module")
    quota = created(user_id, "The error ERR_QUOTA_EXCEEDED_42 means the tenant hit its quota")
    await Log(versions.projection(), reader).apply(build, caroline, code, quota, created(user_id, "unrelated words"))

    def names(*wanted, words=()):
        return ids(reader.search(user_id, list(words), list(wanted), {}, False, None, 10))

    assert names("release_buidl.sh") == [build.memory_id]  # two letters swapped
    assert names("Carolyne") == [caroline.memory_id]  # one letter wrong
    assert names("Carolin") == []  # its stem is Caroline's: BM25 finds it
    assert ids(reader.search(user_id, ["carolin"], ["Carolin"], {}, False, None, 10)) == [caroline.memory_id]
    assert names("Carol") == [caroline.memory_id]  # the start of the name
    assert names("getUserNme") == [code.memory_id]
    assert names("UserName") == [code.memory_id]  # a fragment of the identifier
    assert names("Zorblax") == []
    # An exact name is BM25's: found by its words, not again by the fuzzy part.
    assert names("ERR_QUOTA_EXCEEDED_42") == []
    hits = reader.search(user_id, ["err", "quota", "exceeded", "42"], ["ERR_QUOTA_EXCEEDED_42"], {}, False, None, 10)
    assert ids(hits) == [quota.memory_id]
    # Fuzzy hits come after BM25's, without repeating them.
    assert names("Carolyne", words=["nightly"]) == [build.memory_id, caroline.memory_id]
    assert names("Carolyne", words=["support"]) == [caroline.memory_id]


async def test_a_misspelt_name_keeps_a_place_when_common_words_fill_the_depth(versions, reader, user_id):
    meetings = [created(user_id, f"the weekly meeting number {n}") for n in range(40)]
    patterson = created(user_id, "Patterson signed the lease")
    await Log(versions.projection(), reader).apply(*meetings, patterson)
    hits = ids(reader.search(user_id, ["meeting", "pattrson"], ["Pattrson"], {}, False, None, 30))
    assert len(hits) == 30 and patterson.memory_id in hits
    assert set(hits[:20]) <= {m.memory_id for m in meetings}  # BM25's best stay first


async def test_a_search_after_a_commit_sees_it_whatever_it_counted_before(versions, reader, user_id):
    """Counts are cached for the weights; a zero must not be (it skips the term or the user)."""
    log = Log(versions.projection())  # no refresh: the search itself must take the commit
    await log.apply(created(user_id, "an early note"))
    assert find(reader, user_id, "zeppelin") == []  # the user has no such word yet
    late = created(user_id, "the zeppelin hangar opens")
    await log.apply(late)
    assert ids(reader.search(user_id, ["zeppelin"], [], {}, False, None, 10)) == [late.memory_id]
    stranger = f"{user_id}-new"
    assert find(reader, stranger, "zeppelin") == []  # a user with no memories yet
    theirs = created(stranger, "a zeppelin ride")
    await log.apply(theirs)
    assert find(reader, stranger, "zeppelin") == [theirs.memory_id]


async def test_window_scope_and_state_are_clauses_of_the_query(versions, reader, user_id):
    may = created(user_id, "meeting notes", happened_at=datetime(2024, 5, 10, 9, 0, 0, 500_000, tzinfo=timezone.utc))
    june = created(user_id, "meeting notes again", happened_at=datetime(2024, 6, 2, tzinfo=timezone.utc), app_id="a")
    await Log(versions.projection(), reader).apply(may, june)

    def within(start, end, **fields):
        return ids(reader.search(user_id, ["meeting"], [], fields, False, (start, end), 10))

    assert within(datetime(2024, 5, 1, tzinfo=timezone.utc), datetime(2024, 6, 1, tzinfo=timezone.utc)) == [
        may.memory_id]
    # [start, end) to the microsecond
    at = datetime(2024, 5, 10, 9, 0, 0, 500_000, tzinfo=timezone.utc)
    assert within(at, at + timedelta(microseconds=1)) == [may.memory_id]
    assert within(at - timedelta(microseconds=1), at) == []
    assert within(datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2025, 1, 1, tzinfo=timezone.utc),
                  app_id="a") == [june.memory_id]


async def test_graph_names_are_the_names_a_users_entities_share_a_word_with(versions, reader, user_id):
    await Log(versions.projection(), reader).apply(
        created(user_id, "Ana Lopes works at Acme Corp"),
        created(user_id, "whatever", entities=(Entity("FastAPI", "product"),)),
        created(user_id + "-b", "Bob uses Django"))
    assert reader.graph_names(user_id, ["Lopes", "ana", "Acme  Corp", "fastapi", "Django", "Bob"]) == [
        "Lopes", "ana", "Acme  Corp", "fastapi"]
    assert reader.graph_names(user_id, []) == [] and reader.graph_names(user_id + "-b", ["django"]) == ["django"]


async def test_graph_names_leave_out_hubs_named_in_more_than_a_fifth_of_the_users_memories(versions, reader, user_id):
    small = user_id + "-small"
    caroline, melanie = Entity("Caroline", "person"), Entity("Melanie", "person")
    await Log(versions.projection(), reader).apply(
        *[created(user_id, f"said thing {n}", minute=n, entities=(caroline,)) for n in range(HUB_MIN + 10)],
        *[created(user_id, f"painted picture {n}", minute=n, entities=(melanie,)) for n in range(5)],
        *[created(user_id, f"unrelated note {n}", minute=n) for n in range(4 * HUB_MIN)],
        *[created(small, f"called about {n}", minute=n, entities=(Entity("Ana", "person"),)) for n in range(10)])
    # Caroline: 60 of 265 memories, over HUB_MIN and over a fifth; Melanie: 5
    assert reader.graph_names(user_id, ["Caroline", "Melanie"]) == ["Melanie"]
    assert reader.graph_names(small, ["Ana"]) == ["Ana"]  # every memory, but no more than HUB_MIN


def test_a_reader_without_an_index_is_unavailable(tmp_path):
    reader = SparseIndex(tmp_path / "nothing")
    assert not reader.available() and reader.version() is None
    with pytest.raises(SparseUnavailable):
        reader.search("u", ["x"], [], {}, False, None, 10)


def _watch(root: str, user_id: str, word: str, found) -> None:
    """In another process: search until `word` is found, then report when."""
    reader = SparseIndex(Path(root))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if reader.available() and reader.search(user_id, [word], [], {}, False, None, 1):
            found.put(time.time())
            return
        time.sleep(0.001)
    found.put(None)


async def test_a_reader_in_another_process_sees_each_commit(versions, root, user_id):
    context = multiprocessing.get_context("spawn")
    log = Log(versions.projection())
    await log.apply(created(user_id, "warm up"))
    delays = []
    for n in range(5):
        word = f"marker{uuid.uuid4().hex[:8]}"
        found = context.Queue()
        watcher = context.Process(target=_watch, args=(str(root), user_id, word, found))
        watcher.start()
        await asyncio.sleep(1.5)  # the watcher is up and polling
        began = time.time()
        await log.apply(created(user_id, f"a memory with {word}"))
        seen = await asyncio.to_thread(found.get, True, 30)
        watcher.join(5)
        assert seen is not None, "the other process never saw the commit"
        delays.append(seen - began)  # the batch's apply and commit, then the other process's reload and search
    print(f"from apply_batch to a hit in another process: {[round(d * 1000, 1) for d in delays]} ms")
    assert max(delays) < 1.0


# --- versions: replay beside the live one, switch, relocation ----------------------------------


@pytest.fixture
async def topic(settings):
    run = uuid.uuid4().hex[:8]
    name, dlq = f"test-sparse-{run}", f"test-sparse-dlq-{run}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(name, 3, 1), NewTopic(dlq, 1, 1)])
    yield name, dlq
    await admin.delete_topics([name, dlq])
    await admin.close()


async def test_replay_beside_the_live_version_then_the_live_projector_follows(settings, topic, versions, reader,
                                                                             user_id, root):
    name, dlq = topic
    publisher = EventPublisher(settings.kafka_bootstrap, topic=name, timeout_s=10,
                               transactional_id=f"test-sparse-{uuid.uuid4().hex[:8]}")
    users = [f"{user_id}-{n}" for n in range(6)]
    memories = [created(users[n % 6], f"fact {n} about replaying the sparse index") for n in range(300)]
    live = ProjectorRunner(versions.projection(), settings.kafka_bootstrap, topic=name, dlq_topic=dlq,
                           group_id=f"test-sparse-{uuid.uuid4().hex[:8]}")
    try:
        await publisher.publish(memories)
        await publisher.publish([MemoryDeleted(user_id=users[0], actor="u", memory_id=memories[0].memory_id),
                                 MemoryUpdated(user_id=users[1], actor="u", memory_id=memories[1].memory_id,
                                               text="fact 1 rewritten")])
        await live.start()
        deadline = time.monotonic() + 60
        while live.applied_count < 302:
            await live.poll_once(timeout_ms=500)
            assert time.monotonic() < deadline
        before = sparse_digest._digest(root, 1)
        assert before["parts"]["memories"]["rows"] == 299 and before["parts"]["tombstones"]["rows"] == 1

        # A candidate that has applied less than the live version is refused.
        await versions.create_version(2)
        assert not await versions.switch(2, name)
        assert reader.version() == 1

        report = await replay(versions, settings.kafka_bootstrap, topic=name, keep_old=False)
        assert (report.old_version, report.new_version) == (1, 2) and report.events == 302
        assert reader.version() == 2 and not sparse_layout.version_dir(root, 1).exists()
        assert sparse_digest._digest(root, 2)["digest"] == before["digest"]
        assert set(find(reader, users[2], "replaying")) == {m.memory_id for m in memories[2::6]}

        # The live projector notices the switch on its next batch and continues in version 2.
        late = created(users[3], "written after the switch")
        await publisher.publish([late])
        deadline = time.monotonic() + 30
        while not find(reader, users[3], "switch"):
            await live.poll_once(timeout_ms=500)
            assert time.monotonic() < deadline
        assert live.relocations == 1 and find(reader, users[3], "switch") == [late.memory_id]

        # Same log, same digest: a second replay (its own version 3) digests like the live one.
        again = await replay(versions, settings.kafka_bootstrap, topic=name, keep_old=True, switch=False)
        assert again.new_version == 3 and not sparse_layout.version_dir(root, 3).exists()
        report = await replay(versions, settings.kafka_bootstrap, topic=name, keep_old=True)
        assert sparse_digest._digest(root, report.new_version)["digest"] == sparse_digest._digest(root, 2)["digest"]
        assert await versions.versions() == [2, 3]
        with pytest.raises(ValueError):
            await versions.drop(3)  # live
    finally:
        await live.close()
        await publisher.stop()


async def test_a_projector_on_a_switched_version_is_relocated(versions, user_id):
    projector = versions.projection()
    await projector.apply_batch(TOPIC, [Applied(0, 0, created(user_id, "one"))])
    replayed = versions.projection(2)
    await versions.create_version(2)
    await replayed.apply_batch(TOPIC, [Applied(0, 0, created(user_id, "one")), Applied(0, 1, None)])
    assert await versions.switch(2, TOPIC)
    with pytest.raises(Relocated):
        await projector.apply_batch(TOPIC, [Applied(0, 2, created(user_id, "two"))])
    assert await projector.positions(TOPIC) == {0: 1}
    await projector.apply_batch(TOPIC, [Applied(0, 2, created(user_id, "two"))])
    assert await projector.positions(TOPIC) == {0: 2}


# --- erasure ---------------------------------------------------------------------------------


async def test_erasure_leaves_nothing_of_the_user_in_the_index_files(versions, reader, user_id, root):
    marker = f"zqx{uuid.uuid4().hex}"
    victim, other = user_id, f"other-{uuid.uuid4().hex[:8]}"  # not containing the victim's id
    log = Log(versions.projection(), reader)
    await log.apply(*[created(other, f"kept memory {n} of the other user") for n in range(200)])
    gone = created(victim, f"my secret {marker} lives here", agent_id="ide")
    await log.apply(gone, created(victim, "Ana Lopes is my friend"))
    await log.apply(MemoryDeleted(user_id=victim, actor="u", memory_id=gone.memory_id),
                    created(victim, f"another secret {marker}"))
    # The control: the user's bytes are in the files before (the marker or the user id: which
    # of them a compressed block or the dictionary's FST leaves readable varies with the content).
    assert grep(root, marker) or grep(root, victim)
    index = sparse_schema.open_index(sparse_layout.version_dir(root, 1))
    index.reload()
    # Two: the deleted memory's text stays in the files until its segment merges (a Tantivy delete
    # only marks it), besides the live one's.
    [stem] = sparse_schema.text_terms(marker)
    assert index.searcher().doc_freq("text", stem) == 2
    positions = reader.positions(TOPIC)

    await log.apply(UserErased(user_id=victim, actor="operator"))
    assert find(reader, victim, marker) == [] and find(reader, victim, "friend") == []
    assert reader.graph_names(victim, ["Ana"]) == []
    assert grep(root, marker) == [] and grep(root, victim) == []
    index.reload()
    searcher = index.searcher()
    assert searcher.doc_freq("text", stem) == 0 and searcher.doc_freq("user_id", victim) == 0
    assert len(find(reader, other, "kept")) == 50  # the search limit: the other user's all there
    assert reader.positions(TOPIC) == {0: positions[0] + 1}
    # The version keeps working: new writes, a redelivered erasure.
    await log.apply(created(other, "after the erasure"), UserErased(user_id=victim, actor="operator"))
    assert find(reader, other, "erasure")


async def test_a_version_of_another_schema_is_left_for_a_replay_to_replace(root, user_id):
    """An index an older release built: readers leave it (SQL answers), the projector waits
    (nothing dead-lettered) with its positions still readable, a replay leftover is rebuilt."""
    for version in (1, 2):
        builder = tantivy.SchemaBuilder()
        for name in ("kind", "topic", "slot"):
            builder.add_text_field(name, stored=True, tokenizer_name="raw")
        builder.add_unsigned_field("partition", stored=True)
        builder.add_integer_field("offset", stored=True)
        old = tantivy.Index(builder.build(), path=str(_made(sparse_layout.version_dir(root, version))))
        writer = old.writer(15_000_000, 1)
        writer.add_document(tantivy.Document(kind="position", topic=TOPIC, slot=f"{TOPIC}/0", partition=0, offset=7))
        writer.commit()
        writer.wait_merging_threads()
    sparse_layout.write_live(root, 1)
    reader = SparseIndex(root)
    assert not reader.available() and not reader.available()
    versions = SparseVersions(root)
    projector = versions.projection()
    assert await projector.positions(TOPIC) == {0: 7}
    with pytest.raises(SparseOutdated):
        await projector.apply_batch(TOPIC, [Applied(0, 8, created(user_id, "waits"))])
    assert SparseOutdated in projector.transient_errors
    await versions.create_version(2)  # a leftover of the old release: made anew
    replayed = versions.projection(2)
    await replayed.apply_batch(TOPIC, [Applied(0, 7, created(user_id, "rebuilt"))])
    assert await versions.switch(2, TOPIC)
    assert reader.available() and find(reader, user_id, "rebuilt")


def _made(path: Path) -> Path:
    path.mkdir(parents=True)
    return path
