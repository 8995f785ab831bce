"""The consolidation and forgetting workers as faust-streaming apps.

Each app (consumer group `recallstack-<kind>`) has
- an agent over recallstack.memory.events that keeps a table `activity` of per-user state
  (first seen, last change not yet passed over), co-partitioned with the log (keyed by user_id) and backed by
  a changelog topic, so a restarted or moved worker knows every user and who changed;
- a timer that runs the pass (consolidation/lifecycle.py) for the users that are due:
  consolidation for users that changed since their last pass (a token budget can only be
  crossed by a change) and for every user once per `full_every_s` (the age trigger);
  forgetting for every known user once per `interval_s` (decay needs no event).

The timer runs on every worker for the users of the partitions it holds, so instances
share the work. Last-pass times are kept in a file beside the worker's faust data
(consolidation/pass_times.py), so a restart does not make every user due again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Awaitable, Callable

import faust
from faust.transport.drivers import aiokafka as faust_kafka

from adapters import kafka_security
from adapters.kafka_codec import TYPE_HEADER
from consolidation.lifecycle import Kind, Lifecycle
from consolidation.pass_times import PassTimes
from settings import EVENTS_PARTITIONS, EVENTS_TOPIC, Settings, lifecycle_group

log = logging.getLogger(__name__)

# Events that change what a pass would decide (access arrives on its own topic, in Postgres).
_CHANGES = {b"MemoryCreated", b"MemoryUpdated", b"MemoryDeleted", b"MemoryScopeDeleted", b"MemoryConsolidated",
            b"MemoryForgotten", b"MemoryExpired", b"MemoryRestored"}


# A pass runs every few minutes, so the activity table may learn of a change a second late:
# each fetch waits for this much data (or faust's 1.5 s fetch wait) instead of waking on
# every record. Woken per record, the two apps cost ~7 ms of CPU per add (theirs and Kafka's).
FETCH_MIN_BYTES = 1 << 20


class _BatchedFetchThread(faust_kafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_min_bytes = FETCH_MIN_BYTES  # faust sets no fetch_min_bytes; aiokafka hands it to its fetcher on start()
        return consumer


class _BatchedFetchConsumer(faust_kafka.Consumer):
    def _new_consumer_thread(self):
        return _BatchedFetchThread(self, loop=self.loop, beacon=self.beacon)

    async def _add_gap(self, tp, offset_from: int, offset_to: int) -> None:
        """The offsets before `offset_to` that the log holds no event at (transaction markers,
        aborted records), so that committing may pass over them. faust's own version
        (0.15.3) has two faults that made these workers ~180,000 events behind on a busy log:
        - it counts the record at `offset_to` itself as a hole, and that record is acked as
          well: the duplicate splits the acked run, so each commit moved past one or two
          events. Every event on the log is its own transaction, hence followed by a marker:
          offsets were committed at ~10 events/s, and each restart read everything again;
        - it rebuilds the whole tree of holes at each new one (merge_overlaps): quadratic in
          the events read between two commits, 40 s of CPU per restart of each worker.
        Holes arrive in offset order, so one past the tree's end is added as it is."""
        committed = self._committed_offset[tp]
        if committed is not None:
            offset_from = max(offset_from, committed + 1)
        if offset_from >= offset_to:
            return
        gaps = self._gap[tp]
        in_order = not gaps or offset_from >= gaps.end()
        gaps.addi(offset_from, offset_to)  # intervaltree intervals exclude their end
        if not in_order:
            gaps.merge_overlaps()


class _OutageTolerantTable(faust.Table):
    def _verify_source_topic_partitions(self, source_topic: str) -> None:
        """faust checks once that the changelog has as many partitions as the log, from the
        consumer's metadata. While that metadata comes back after a Kafka outage a topic can
        read as 0 partitions: faust then raised PartitionsMismatch in the table agent, which
        died and left the stream stopped for good. A count of 0 is not known yet: check at the
        next write instead; a real mismatch still raises."""
        consumer = self.app.consumer
        if not consumer.topic_partitions(source_topic) or not consumer.topic_partitions(self.changelog_topic_name):
            return
        super()._verify_source_topic_partitions(source_topic)


def due_users(kind: Kind, activity: list[tuple[str, dict]], last_pass: dict[str, float], now: float,
              full_every_s: float) -> list[str]:
    """The users a timer tick passes over, the most recently changed first: for forgetting
    every known user (decay needs no event); for consolidation those that changed since
    their last pass, and everyone once per `full_every_s` (the age trigger)."""
    due = []
    for user, state in activity:
        done = last_pass.get(user, 0.0)
        if kind == "forget" or now - done >= full_every_s or state.get("changed", 0.0) > done:
            due.append((-state.get("changed", 0.0), user))
    return [user for _, user in sorted(due)]


def build_app(kind: Kind, cfg: Settings, lifecycle: Callable[[], Awaitable[Lifecycle]], *, interval_s: float,
              full_every_s: float) -> faust.App:
    app = faust.App(
        lifecycle_group(kind), broker=f"kafka://{cfg.kafka_bootstrap}", store="memory://",
        datadir=str(cfg.home / "faust"), topic_partitions=EVENTS_PARTITIONS, web_enabled=False,
        consumer_auto_offset_reset="earliest", broker_credentials=kafka_security.faust_credentials(),
        Table=_OutageTolerantTable,
    )
    app.transport.Consumer = _BatchedFetchConsumer
    events = app.topic(EVENTS_TOPIC, key_serializer="raw", value_serializer="raw", partitions=EVENTS_PARTITIONS,
                       internal=False)
    activity = app.Table("activity", partitions=EVENTS_PARTITIONS)  # JSON keys and values (the app default)
    pass_times = PassTimes(cfg.home / "faust" / f"{kind}-last-pass.json")
    last_pass: dict[str, float] = pass_times.load()
    runner: list[Lifecycle] = []

    @app.agent(events)
    async def track(stream):
        async for event in stream.events():
            user = (event.key or b"").decode()
            state = activity.get(user)
            event_type = dict(event.headers or ()).get(TYPE_HEADER)  # the header alone: no Avro decode
            if event_type == b"UserErased":  # nothing of an erased user is kept, not even their id
                if state is not None:
                    del activity[user]
                if last_pass.pop(user, None) is not None:
                    pass_times.save(last_pass)
                continue
            changed = event_type in _CHANGES
            # One table write (one changelog record) per user per pass at most: only when the
            # user is not known yet, or not yet marked as changed since their last pass.
            if state is None or (changed and state.get("changed", 0.0) <= last_pass.get(user, 0.0)):
                at = event.message.timestamp / 1000
                activity[user] = {"seen": at, "changed": at if changed else (state or {}).get("changed", 0.0)}

    @app.timer(interval=interval_s)
    async def run_pass():
        now = datetime.now(timezone.utc).timestamp()
        due = due_users(kind, list(activity.items()), last_pass, now, full_every_s)
        if not due:
            return
        if not runner:
            runner.append(await lifecycle())
        counts: dict[str, int] = {}
        appended = 0
        for user in due:
            report = await runner[0].run(kind, users=[user])
            last_pass[user] = now  # per user: a long pass that is interrupted keeps what it did
            pass_times.save(last_pass, unless_saved_within_s=1.0)  # the file holds every user
            appended += report.appended
            for action, n in report.counts().items():
                counts[action] = counts.get(action, 0) + n
        pass_times.save(last_pass)
        log.info("%s pass over %d users: %s, %d events appended", kind, len(due), counts, appended)

    return app
