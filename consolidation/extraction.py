"""The extraction worker: ConversationReceived -> facts -> reconciled memory events.

For each conversation (an add with infer=true) it
1. extracts facts (LLM when configured; on an LLM failure the offline extractor, said in
   the actor `worker:extract(offline-fallback)`),
2. embeds them once (replay never re-embeds),
3. looks up the similar active memories of the same user and scope in Postgres, after
   waiting for the projection to have applied this worker's own earlier appends (so a
   fact repeated by the next conversation is seen),
4. decides per fact ADD / UPDATE / DELETE / NONE with a reason, and drops a fact that
   repeats an earlier fact of the same conversation,
5. appends MemoryCreated / MemoryUpdated / MemoryDeleted (causation_id = the conversation
   event, correlation_id its correlation id) and commits its consumer offset in the SAME
   Kafka transaction: a crash before the commit redoes the conversation, after it never
   does, so each conversation's events are appended exactly once. Event and memory ids are
   derived from the conversation event id too (uuid5), so even a replayed decision could
   not create a second memory.

NONE appends nothing; it is counted (metrics, the run report). `--dry-run` prints the
decisions and appends and commits nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter as Tally
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import Counter

from adapters import heartbeat, kafka_codec, kafka_security, observability
from adapters.kafka_log import GroupProgress, timed_produce
from adapters.key_store import KeyStoreUnavailable
from consolidation import memory_reads
from domain.events import ConversationReceived, Event, MemoryCreated, MemoryDeleted, MemoryUpdated
from domain.intelligence import Decision, Intelligence, ReconciliationPolicy
from settings import EVENTS_TOPIC, EXTRACT_GROUP, projector_group

log = logging.getLogger(__name__)

DECISIONS = Counter("recallstack_extraction_decisions_total", "Reconciliation decisions per fact", ["action"])
FALLBACKS = Counter("recallstack_extraction_fallbacks_total", "Conversations extracted offline after an LLM failure")
GROUP = EXTRACT_GROUP
LOOP = "worker-extract"  # its heartbeat (adapters/heartbeat.py)
PG_GROUP = projector_group("postgres")  # whose progress decides when our appends are readable
ACTOR = "worker:extract"
_IDS = uuid.UUID("5b0f3c1e-9a4d-4e57-8c1b-2f6d7e8a9b0c")  # namespace of the derived ids


def derived_id(conversation_event_id: str, kind: str, index: int) -> str:
    return str(uuid.uuid5(_IDS, f"{conversation_event_id}/{kind}/{index}"))


def drop_repeats(decisions: list[Decision], vectors: np.ndarray, duplicate_at: float) -> list[Decision]:
    """A fact that repeats an earlier kept fact of the same conversation becomes NONE."""
    kept: list[int] = []
    out = []
    for i, decision in enumerate(decisions):
        if decision.action in ("ADD", "UPDATE") and kept:
            sims = vectors[kept] @ vectors[i]
            j = int(np.argmax(sims))
            if sims[j] >= duplicate_at:
                out.append(Decision("NONE", decision.fact, f"repeats fact #{kept[j]} of this conversation "
                                                           f"(cosine {sims[j]:.2f})"))
                continue
        if decision.action in ("ADD", "UPDATE"):
            kept.append(i)
        out.append(decision)
    return out


def events_for(conversation: ConversationReceived, decisions: Sequence[Decision], vectors: np.ndarray,
               embedding_model: str, actor: str, embed: Callable[[str], np.ndarray]) -> list[Event]:
    """The events that carry out `decisions` (one per fact, facts in order, vectors aligned)."""
    events: list[Event] = []
    common = dict(user_id=conversation.user_id, actor=actor, correlation_id=conversation.correlation_id,
                  causation_id=conversation.event_id)
    for i, (decision, vector) in enumerate(zip(decisions, vectors)):
        fact = decision.fact
        event_id = derived_id(conversation.event_id, "event", i)
        if decision.action == "ADD":
            text = decision.new_text
            events.append(MemoryCreated(
                **common, event_id=event_id, memory_id=derived_id(conversation.event_id, "memory", i), text=text,
                embedding=_floats(vector if text == fact.text else embed(text)), embedding_model=embedding_model,
                happened_at=conversation.happened_at, agent_id=conversation.agent_id, run_id=conversation.run_id,
                app_id=conversation.app_id, categories=fact.categories, importance=fact.importance,
                entities=fact.entities, relations=fact.relations, expires_at=conversation.expires_at,
                metadata={**conversation.metadata, "source": {
                    "conversation_id": conversation.conversation_id, "message_indexes": list(fact.message_indexes),
                    "reason": decision.reason}},
            ))
        elif decision.action == "UPDATE":
            text = decision.new_text
            events.append(MemoryUpdated(
                **common, event_id=event_id, memory_id=decision.memory_id, text=text,
                embedding=_floats(vector if text == fact.text else embed(text)), embedding_model=embedding_model,
                importance=fact.importance, reason=decision.reason))
        elif decision.action == "DELETE":
            events.append(MemoryDeleted(**common, event_id=event_id, memory_id=decision.memory_id,
                                        reason=decision.reason))
    return events


def _floats(vector) -> tuple[float, ...]:
    return tuple(float(x) for x in np.asarray(vector).ravel())


@dataclass
class ExtractionReport:
    conversations: int = 0
    facts: int = 0
    actions: Tally = field(default_factory=Tally)
    fallbacks: int = 0
    appended: int = 0
    decisions: list[dict] = field(default_factory=list)  # kept for --dry-run output

    def as_dict(self) -> dict:
        return {"conversations": self.conversations, "facts": self.facts, "actions": dict(self.actions),
                "offline_fallbacks": self.fallbacks, "events_appended": self.appended}


class ExtractionWorker:
    """Consumes the log in group recallstack.worker.extract; one instance per
    transactional id (run one worker, or give each its own RECALLSTACK_WORKER_INSTANCE)."""

    def __init__(self, intelligence: Intelligence, offline: Intelligence, embedder, pool, bootstrap: str, *,
                 policy: ReconciliationPolicy = ReconciliationPolicy(), dry_run: bool = False,
                 instance: str = "0", pg_wait_s: float = 30.0, topic: str = EVENTS_TOPIC, group_id: str = GROUP,
                 keys=None, commit_every_s: float = 1.0):
        self.intelligence, self.offline = intelligence, offline
        self.keys = keys  # a Keyring: conversations arrive sealed, memories leave sealed
        self.embedder, self.pool, self.policy = embedder, pool, policy
        self.dry_run, self.pg_wait_s, self.topic, self.group_id = dry_run, pg_wait_s, topic, group_id
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", isolation_level="read_committed", max_poll_records=50,
            **kafka_security.client_options())
        self.producer = None if dry_run else AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0,
            transactional_id=f"{group_id}-{instance}", transaction_timeout_ms=60_000,
            **kafka_security.client_options())
        self.report = ExtractionReport()
        # partition -> the log position the Postgres projector must have passed (our last append + 1)
        self._awaiting: dict[int, int] = {}
        self.projected = GroupProgress(bootstrap, PG_GROUP, topic)
        self._committed: dict[TopicPartition, int] = {}
        # Records that need no extraction (all but conversations) have their offsets committed
        # at most this often, and when idle: a transaction per fetched batch of memories cost
        # Kafka ~3 ms of CPU per add. Re-reading them after a crash only skips them again.
        self.commit_every_s = commit_every_s
        self._positions_committed_at = 0.0
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        try:
            if self.producer is not None:
                await self.producer.start()  # fences an earlier instance with the same id, aborting its open transaction
            await self.projected.start()
            await self.consumer.start()
        except BaseException:
            await self.close()  # a start that fails leaves no client open (their finalizers would complain)
            raise
        self.consumer.subscribe([self.topic])

    def stop(self) -> None:
        """Ends `run` after the conversation in hand (called from a signal handler, so not a coroutine)."""
        self._stopping.set()

    async def close(self) -> None:
        await self.consumer.stop()
        await self.projected.close()
        if self.producer is not None:
            await self.producer.stop()

    async def run(self, once: bool = False, progress: Callable[[ExtractionReport], None] = lambda r: None
                  ) -> ExtractionReport:
        """Process conversations until stopped; with `once`, until the log's end as it was
        when the partitions were assigned."""
        await self.start()
        try:
            targets: dict[TopicPartition, int] | None = None
            while not self._stopping.is_set():
                heartbeat.beat(LOOP)
                records = await self.consumer.getmany(timeout_ms=500)
                if targets is None and self.consumer.assignment():
                    targets = await self.consumer.end_offsets(list(self.consumer.assignment()))
                    # What an earlier run appended may not be projected yet: wait for all of the log.
                    self._awaiting = {tp.partition: o for tp, o in targets.items()}
                for tp, messages in records.items():
                    await self._handle(tp, messages)
                    progress(self.report)
                if not records or time.monotonic() - self._positions_committed_at >= self.commit_every_s:
                    await self._commit_positions()
                if once and targets is not None and not records:
                    positions = {tp: await self.consumer.position(tp) for tp in targets}
                    if all(positions[tp] >= end for tp, end in targets.items()):
                        break
        finally:
            await self.close()
        return self.report

    async def _handle(self, tp: TopicPartition, messages) -> None:
        """Extract each conversation, its facts appended with its offset in one transaction; other
        records are passed over (their offsets committed by _commit_positions)."""
        for message in messages:
            heartbeat.beat(LOOP)  # a fetch may hold many conversations, each an LLM call
            if dict(message.headers or ()).get(kafka_codec.TYPE_HEADER) != b"ConversationReceived":
                continue
            try:
                event = await self._open(message)
            except kafka_codec.Shredded:  # its user was erased meanwhile: nothing to extract
                continue
            # The conversation's correlation id on every line about it; its trace goes on
            # through this span into the events appended (their headers carry its context).
            with observability.bound(**observability.event_fields(event, tp.partition, message.offset)), \
                    observability.consuming("extract ConversationReceived", message.headers, {
                        "messaging.system": "kafka", "messaging.destination.name": tp.topic,
                        "messaging.kafka.partition": tp.partition, "messaging.kafka.offset": message.offset,
                        "recallstack.event_id": event.event_id}):
                events = await self._process(tp, event)
                await self._append(tp, events, message.offset + 1, kafka_codec.seal_ref(message.headers))
                log.info("conversation extracted", extra={
                    "appended": len(events) if not self.dry_run else 0, "event_ids": [e.event_id for e in events][:20],
                    "event_types": sorted({e.event_type for e in events})})

    async def _open(self, message) -> ConversationReceived:
        if self.keys is None:
            return kafka_codec.decode(message.value, message.headers)
        delay = 0.1
        while True:
            try:
                return await self.keys.decode(message.value, message.headers)
            except KeyStoreUnavailable as exc:  # an outage: wait, never skip a conversation
                log.warning("extraction: %s; retrying in %.1fs", exc, delay)
                heartbeat.beat(LOOP)  # waiting out an outage is working
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _process(self, tp: TopicPartition, conversation: ConversationReceived) -> list[Event]:
        brain, actor = self.intelligence, ACTOR
        try:
            facts = await brain.extractor.extract(conversation.messages)
        except Exception as exc:  # an LLM outage degrades extraction, never loses the conversation
            log.warning("extraction of %s failed (%s); using the offline extractor", conversation.event_id, exc)
            FALLBACKS.inc()
            self.report.fallbacks += 1
            brain, actor = self.offline, f"{ACTOR}(offline-fallback)"
            facts = await brain.extractor.extract(conversation.messages)
        self.report.conversations += 1
        self.report.facts += len(facts)
        if not facts:
            return []
        vectors = await asyncio.to_thread(self.embedder.embed, [f.text for f in facts])
        if not await self.projected.wait({tp.partition: self._awaiting.get(tp.partition, 0)}, self.pg_wait_s):
            log.warning("Postgres has not applied partition %d up to %d after %.0fs; reconciling with what it has",
                        tp.partition, self._awaiting[tp.partition], self.pg_wait_s)
        scope = {"agent_id": conversation.agent_id, "run_id": conversation.run_id, "app_id": conversation.app_id}
        candidates = [await memory_reads.similar(self.pool, conversation.user_id, scope, v, self.policy.candidates)
                      for v in vectors]
        try:
            decisions = await brain.reconciler.decide(facts, candidates)
        except Exception as exc:
            if brain is self.offline:
                raise
            log.warning("reconciliation of %s failed (%s); deciding offline", conversation.event_id, exc)
            FALLBACKS.inc()
            self.report.fallbacks += 1
            actor = f"{ACTOR}(offline-fallback)"
            decisions = await self.offline.reconciler.decide(facts, candidates)
        decisions = drop_repeats(list(decisions), np.asarray(vectors), self.policy.duplicate_at)
        for d in decisions:
            DECISIONS.labels(d.action).inc()
            self.report.actions[d.action] += 1
            if self.dry_run:
                self.report.decisions.append({"conversation_id": conversation.conversation_id, "action": d.action,
                                              "fact": d.fact.text, "memory_id": d.memory_id, "reason": d.reason})
        return events_for(conversation, decisions, np.asarray(vectors), self.embedder.model_id, actor,
                          self.embedder.embed_one)

    async def _commit_positions(self) -> None:
        """Commit every partition's position (all fetched records are handled by now): past the
        records that needed no extraction, and past the transaction markers that end each
        partition, so lag tools read zero (the markers carry no record to handle)."""
        self._positions_committed_at = time.monotonic()
        if self.dry_run:
            return
        moved = {}
        for tp in self.consumer.assignment():
            position = await self.consumer.position(tp)
            if self._committed.get(tp, -1) < position:
                moved[tp] = position
        if moved:
            async with self.producer.transaction():
                await self.producer.send_offsets_to_transaction(moved, self.group_id)
            self._committed.update(moved)

    async def _keys_of_source(self, events: list[Event], source: tuple[str, int] | None) -> dict | None:
        """Facts are sealed with the key their conversation was sealed with, read afresh from
        the store: None when it was destroyed meanwhile (an erasure raced the extraction)."""
        if source is None:  # an unsealed conversation (written before sealing)
            return await self.keys.keys_for(events)
        self.keys.forget(source[0])
        key = await self.keys.store.lookup(*source)
        return None if key is None else {source[0]: key}

    async def _append(self, tp: TopicPartition, events: list[Event], next_offset: int,
                      source: tuple[str, int] | None = None) -> None:
        """Append `events` and move the group's offset to `next_offset`, in one transaction."""
        if self.dry_run:
            return
        keys = {}
        if self.keys is not None and events:
            keys = await self._keys_of_source(events, source)
            if keys is None:  # the user was erased while we extracted: their facts must not be stored
                events = []
        with timed_produce(self.topic):
            async with self.producer.transaction():
                futures = []
                trace = observability.trace_headers()  # the extraction's span: the conversation's trace goes on
                for event in events:
                    value, headers = kafka_codec.encode(event, keys.get(event.user_id))
                    futures.append(await self.producer.send(self.topic, value=value, key=event.user_id.encode(),
                                                            headers=headers + trace))
                landed = await asyncio.gather(*futures)
                await self.producer.send_offsets_to_transaction({tp: next_offset}, self.group_id)
        self._committed[tp] = next_offset
        for metadata in landed:
            self._awaiting[metadata.partition] = max(self._awaiting.get(metadata.partition, 0), metadata.offset + 1)
        self.report.appended += len(events)
