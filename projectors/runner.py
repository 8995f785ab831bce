"""The consume loop shared by every projector.

Positions live in the read model (written with the data), not in Kafka's committed
offsets: on assignment each partition is sought to the stored position + 1, which is
what makes the effect exactly-once. An event that cannot be decoded or applied goes
to the dead-letter topic with the error, and the projection moves on.

Sealed events (docs/security.md) are opened with the keyring: the keys of a fetched
batch are loaded in one query, then each record decodes from the cache. An event of an
erased user (its key destroyed) is skipped, never dead-lettered, so the log still
replays after an erasure; a UserErased event drops this process's cached keys of its user.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import traceback
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError, IllegalStateError
from prometheus_client import Counter, Gauge, Histogram

from adapters import heartbeat, kafka_codec, kafka_security, observability
from adapters.kafka_log import timed_produce
from adapters.key_store import KeyStoreUnavailable
from domain import sealing
from domain.events import Event, UserErased
from projectors import telemetry
from projectors.applied import Applied, Projection, Relocated
from settings import DLQ_TOPIC, EVENTS_TOPIC, projector_group

log = logging.getLogger(__name__)

APPLIED = Counter("recallstack_projector_applied_events_total", "Events applied by a projector", ["projection"])
DEAD_LETTERED = Counter("recallstack_dlq_events_total", "Events a projector sent to the dead-letter topic",
                        ["projection"])
SHREDDED = Counter("recallstack_projector_shredded_events_total",
                   "Events skipped because their user was erased (data key destroyed)", ["projection"])
BATCH_SECONDS = Histogram("recallstack_projector_batch_seconds", "Time to apply one batch", ["projection"])
LAG_EVENTS = Gauge("recallstack_projector_lag_events",
                   "Records between the log's end (high watermark of the last fetch) and the projector's position, "
                   "summed over its assigned partitions", ["projection"])
EVENT_VISIBLE_SECONDS = Histogram(
    "recallstack_projector_event_visible_seconds",
    "From the append (the Kafka record's timestamp) to the commit of the read model that applies it",
    ["projection"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600))


class _SeekToStoredPositions(ConsumerRebalanceListener):
    def __init__(self, runner: "ProjectorRunner"):
        self.runner = runner

    async def on_partitions_revoked(self, revoked):
        pass

    async def on_partitions_assigned(self, assigned):
        await self.runner.seek_to_stored(assigned)


class ProjectorRunner:
    """Consumes the log into one projection. As a projector it joins the projection's
    consumer group (partitions shared among its instances); with `replay=True` it reads
    every partition itself, outside any group, so the live projectors are not disturbed."""

    def __init__(self, projection: Projection, bootstrap: str, topic: str = EVENTS_TOPIC, max_batch: int = 500,
                 dlq_topic: str = DLQ_TOPIC, group_id: str | None = None, replay: bool = False, keys=None,
                 linger_ms: int = 0):
        self.projection = projection
        self.keys = keys  # adapters.key_store.Keyring; None: sealed records are dead-lettered
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.max_batch = max_batch
        self.replay = replay
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None if replay else group_id or projector_group(projection.name),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=max_batch,
            # linger_ms > 0: the broker answers a fetch once 1 MiB or linger_ms has gathered,
            # so a batch carries what arrived meanwhile (settings.PROJECTOR_LINGER_MS).
            **({"fetch_min_bytes": 1 << 20, "fetch_max_wait_ms": linger_ms} if linger_ms > 0 else {}),
            **kafka_security.client_options(),
        )
        self.dlq = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                    **kafka_security.client_options())
        self.applied_count = 0
        self.relocations = 0
        self._committed: dict[TopicPartition, int] = {}
        self._stopping = asyncio.Event()
        self._loop_name = f"projector-{projection.name}{'-replay' if replay else ''}"

    async def start(self) -> None:
        try:
            await self._connect()
        except BaseException:
            await self.close()  # a start that fails leaves no client open (their finalizers would complain)
            raise
        log.info("projector %s consuming %s%s", self.projection.name, self.topic, " (replay)" if self.replay else "")

    async def close(self) -> None:
        await self.consumer.stop()
        await self.dlq.stop()

    async def _connect(self) -> None:
        await self.dlq.start()
        await self.consumer.start()
        if not self.replay:
            self.consumer.subscribe([self.topic], listener=_SeekToStoredPositions(self))
            return
        # Without a subscription the consumer holds no metadata for the topic: ask the cluster.
        cluster = await self.consumer._client.fetch_all_metadata()
        partitions = [TopicPartition(self.topic, p) for p in sorted(cluster.partitions_for_topic(self.topic) or ())]
        if not partitions:
            raise RuntimeError(f"topic {self.topic} has no partitions (is Kafka up and the topic created?)")
        self.consumer.assign(partitions)
        await self.seek_to_stored(partitions)

    async def run(self) -> None:
        await self.start()
        try:
            while not self._stopping.is_set():
                await self.poll_once()
        finally:
            await self.close()

    def stop(self) -> None:
        self._stopping.set()

    async def poll_once(self, timeout_ms: int = 200) -> int:
        """Fetch and apply what is there, every partition's records in one batch (one
        read-model transaction: under load the batches grow instead of the lag); returns
        how many records were handled."""
        heartbeat.beat(self._loop_name)
        batch, messages = await self.fetch(timeout_ms)
        if not batch:
            if not self.replay:
                await self._commit_idle_positions()
                await self._export_lag()
            return 0
        try:
            await self.apply(batch, messages)
        except Relocated:
            # This poll was fetched for the old version's positions: drop it and start again
            # from where the new version stands.
            self.relocations += 1
            log.info("projector %s: the live version changed; seeking to its positions", self.projection.name)
            await self.seek_to_stored(self.consumer.assignment())
            return 0
        if not self.replay:
            await self._commit({tp: await self.consumer.position(tp) for tp in {tp for tp, _ in messages}})
            self._observe_visible(batch, messages)
            await self._export_lag()
        return len(messages)

    def _observe_visible(self, batch: list[Applied], messages: list) -> None:
        """Event-to-visible latency of each applied event (not of replays: their events are old)."""
        now_ms = time.time() * 1000
        visible = EVENT_VISIBLE_SECONDS.labels(self.projection.name)
        for item, (_tp, message) in zip(batch, messages):
            if item.event is not None and message.timestamp is not None and message.timestamp > 0:
                visible.observe(max(0.0, now_ms - message.timestamp) / 1000)

    async def _export_lag(self) -> None:
        """The lag gauge from what the consumer already knows (each fetch response carries the
        partition's high watermark): no Kafka round trip. Partitions not fetched yet are left out."""
        behind = 0
        try:
            for tp in self.consumer.assignment():
                end = self.consumer.highwater(tp)
                if end is not None:
                    behind += max(0, end - await self.consumer.position(tp))
        except Exception as exc:  # a rebalance in progress: the next poll exports it
            log.debug("lag not exported: %s", exc)
            return
        LAG_EVENTS.labels(self.projection.name).set(behind)

    async def fetch(self, timeout_ms: int = 200) -> tuple[list[Applied], list]:
        """The next batch, decoded (undecodable records already dead-lettered), with its
        (partition, record) pairs; up to max_batch records from every partition."""
        records = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=self.max_batch)
        count = sum(len(ms) for ms in records.values())
        while records and count < self.max_batch:
            # getmany hands out a few records per call even when far more are buffered: take
            # what is there (no waiting) so one transaction carries a real batch.
            more = await self.consumer.getmany(timeout_ms=0, max_records=self.max_batch - count)
            if not more:
                break
            for tp, ms in more.items():
                records.setdefault(tp, []).extend(ms)
                count += len(ms)
        messages = [(tp, m) for tp, ms in records.items() for m in ms]
        if self.keys is not None and messages:
            await self._while_key_store_down(lambda: self.keys.prefetch(m.headers for _, m in messages))
        return [await self._decode(tp, m) for tp, m in messages], messages

    async def _while_key_store_down(self, work):
        """Like a read-model outage: wait for the key store, never dead-letter or skip on it."""
        delay = 0.1
        while True:
            try:
                return await work()
            except KeyStoreUnavailable as exc:
                log.warning("projector %s: %s; retrying in %.1fs", self.projection.name, exc, delay)
                heartbeat.beat(self._loop_name)  # waiting out an outage is working
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def seek_to_stored(self, partitions) -> None:
        stored = await self.projection.positions(self.topic)
        for tp in partitions:
            if tp.partition in stored:
                self.consumer.seek(tp, stored[tp.partition] + 1)
            else:
                await self.consumer.seek_to_beginning(tp)

    async def apply(self, batch: list[Applied], messages: list) -> None:
        """Apply a fetched batch: outages are waited out, poison events dead-lettered."""
        began_ns = time.time_ns()
        with BATCH_SECONDS.labels(self.projection.name).time():
            delay = 0.1
            while True:
                try:
                    await self._apply_or_dead_letter(batch, messages)
                    break
                except self.projection.transient_errors as exc:
                    # The read model is down: wait for it; never dead-letter or skip on an outage.
                    log.warning("projector %s: %s; retrying in %.1fs", self.projection.name, exc, delay)
                    heartbeat.beat(self._loop_name)  # waiting out an outage is working
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
        self.applied_count += len(batch)
        APPLIED.labels(self.projection.name).inc(len(batch))
        telemetry.applied(self.projection.name, self.topic, batch, messages, began_ns, self.replay)

    async def _commit(self, positions: dict[TopicPartition, int]) -> None:
        # Kafka's own committed offsets only inform lag tools; the read model holds the truth.
        # The position, not last offset + 1: it is past the transaction markers that follow.
        changed = {tp: pos for tp, pos in positions.items() if self._committed.get(tp) != pos}
        if not changed:
            return
        try:
            await self.consumer.commit(changed)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced under this batch (another member joined, or the batch took
            # longer than the poll interval): the partitions may be someone else's now. Nothing
            # is lost: the read model committed the batch with its positions, and whoever gets
            # the partitions seeks there. The consumer rejoins on its next fetch.
            log.warning("projector %s: offsets not committed (%s); the group rebalanced, the read model's "
                        "positions stand", self.projection.name, type(exc).__name__)
            return
        self._committed.update(changed)

    async def _commit_idle_positions(self) -> None:
        # A commit marker that ends a partition is skipped without a record to apply; once the
        # consumer is idle its position has moved past it, so lag tools can read zero.
        try:
            await self._commit({tp: await self.consumer.position(tp) for tp in self.consumer.assignment()})
        except Exception as exc:  # a rebalance in progress: the next idle poll commits
            log.debug("idle commit skipped: %s", exc)

    async def _apply_or_dead_letter(self, batch: list[Applied], messages: list) -> None:
        try:
            await self.projection.apply_batch(self.topic, batch)
            return
        except (Relocated, *self.projection.transient_errors):
            raise
        except Exception as exc:
            # No message or traceback in the process log: it may quote a user's content (the
            # dead letters keep the whole error, sealed with that user's key).
            log.error("batch apply failed (%d events: %s); retrying event by event", len(batch), type(exc).__name__)
        # One bad event must not block the partition: apply one by one, dead-letter the failures.
        for item, (tp, message) in zip(batch, messages):
            try:
                await self.projection.apply_batch(self.topic, [item])
            except (Relocated, *self.projection.transient_errors):
                raise
            except Exception as exc:
                await self._dead_letter(tp, message, exc, item.event)
                await self.projection.apply_batch(self.topic, [Applied(item.partition, item.offset, None)])

    async def _decode(self, tp: TopicPartition, message) -> Applied:
        try:
            if self.keys is None:
                event = kafka_codec.decode(message.value, message.headers)
            else:
                event = await self._while_key_store_down(lambda: self.keys.decode(message.value, message.headers))
                if isinstance(event, UserErased):
                    self.keys.forget(event.user_id)
            return Applied(tp.partition, message.offset, event)
        except kafka_codec.Shredded:
            SHREDDED.labels(self.projection.name).inc()
            return Applied(tp.partition, message.offset, None)
        except Exception as exc:
            await self._dead_letter(tp, message, exc)
            return Applied(tp.partition, message.offset, None)

    def _sealed_details(self, message, details: dict) -> dict:
        """The error text of a sealed record's dead letter, sealed with the same user key
        (an exception message may quote the content): erasing the user shreds it too."""
        ref = kafka_codec.seal_ref(message.headers) if self.keys is not None else None
        try:
            key = self.keys.store.cached(*ref) if ref is not None else None
        except Exception:  # the key is not here (KeyMissing): the error then quotes no content
            key = None
        if key is None:
            return details
        sealed = sealing.seal(key.material, json.dumps(details).encode(), sealing.error_associated_data(*ref))
        return {"error": "(sealed with the user's data key; `recallstack dlq list` opens it)", "traceback": None,
                "sealed_error": base64.b64encode(sealed).decode()}

    async def _dead_letter(self, tp: TopicPartition, message, exc: Exception, event: Event | None = None) -> None:
        log.error("dead-lettering %s offset %d: %s", tp, message.offset, type(exc).__name__, extra={
            "projection": self.projection.name, **observability.event_fields(event, tp.partition, message.offset)})
        DEAD_LETTERED.labels(self.projection.name).inc()
        details = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=5)}
        error = json.dumps({
            "projection": self.projection.name, "topic": tp.topic, "partition": tp.partition,
            "offset": message.offset, **self._sealed_details(message, details),
        }).encode()
        headers = list(message.headers or ()) + [("rs-dlq-error", error)]
        with timed_produce(self.dlq_topic):
            await self.dlq.send_and_wait(self.dlq_topic, value=message.value, key=message.key, headers=headers)
