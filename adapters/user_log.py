"""One user's events read back from the log, up to a past moment (the `as_of` reads' source).

Events are keyed by user id, so a user's events are all in one partition, in order. Reading
that partition from where the user's first event can be, skipping other users' records by
their key (no decoding), costs what lies between that start and the moment: every record of
the partition there, the user's own ones decoded and opened. Where to start is a hint the
caller gives (`first_offset`: the Postgres history table's earliest position of the user;
bootstrap.py), the partition's beginning without one.

Sealed events (domain/sealing.py) are opened with the user's data key. An erased user's keys
are destroyed: their events are skipped, never shown (kafka_codec.Shredded), and the key
store is asked for the user's destroyed versions on every read rather than trusting this
process's key cache, which may still hold a key another process destroyed.

One consumer serves the process, one read at a time (a lock: a read assigns and seeks); a read that
finds it busy starts a consumer of its own for its duration, so one user's long read holds no other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from adapters import kafka_codec, kafka_security
from adapters.key_store import KeyMissing, KeyStoreUnavailable
from domain.as_of import InvalidAsOf, LogUnreadable, Moment
from domain.events import Event

FirstOffset = Callable[[str, int], Awaitable[int | None]]  # (user_id, partition) -> where to start reading
IDLE_MS = 100  # a fetch that brings nothing for this long: nothing is left to read
Apply = Callable[[int, int, Event], Awaitable[None]]  # (partition, offset, event), in log order


@dataclass
class UserEvents:
    """What a read went through (its events were handed to `apply` as they were opened)."""
    events: int = 0  # the user's events applied
    next_offset: int = 0  # where a later moment's read resumes: the first record this one did not apply
    last_offset: int | None = None  # of the last one
    scanned: int = 0  # records of the partition read (every user's)
    shredded: int = 0  # the user's events sealed with a destroyed key (an erasure): skipped
    start: int = 0
    seconds: float = 0.0


class UserLog:
    def __init__(self, bootstrap: str, topic: str, keys, first_offset: FirstOffset | None = None,
                 fetch_records: int = 20_000, timeout_s: float = 120.0):
        self.bootstrap, self.topic, self.keys, self.first_offset = bootstrap, topic, keys, first_offset
        self.fetch_records, self.timeout_s = fetch_records, timeout_s
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def destroyed_versions(self, user_id: str) -> frozenset[int]:
        """The user's data-key versions that were destroyed (erasures), asked of the key store."""
        try:
            rows = await self.keys.store.versions(user_id)
        except KeyStoreUnavailable as exc:
            raise LogUnreadable(f"the key store cannot be read ({exc})", "postgres") from exc
        return frozenset(r["version"] for r in rows if r["destroyed_at"] is not None)

    async def close(self) -> None:
        async with self._lock:
            if self._consumer is not None:
                consumer, self._consumer = self._consumer, None
                await consumer.stop()

    async def read(self, user_id: str, moment: Moment, apply: Apply, destroyed: frozenset[int] = frozenset(),
                   resume: int | None = None) -> UserEvents:
        """Hand the user's events in `moment`'s past to `apply`, in log order, as they are opened
        (none is kept here: 100k decoded events would take a gigabyte). InvalidAsOf: a token past
        the partition's end. `destroyed`: the user's destroyed key versions (skip their events).
        `resume`: where an earlier moment's read of the same user stopped (its state goes on from there)."""
        work = self._read(TopicPartition(self.topic, moment.partition), user_id, moment, apply, destroyed, resume)
        if self._lock.locked():  # another read holds the process's consumer: this one starts its own (~50 ms)
            consumer = await self._new_consumer()
            try:
                return await self._guarded(consumer, work)
            finally:
                await consumer.stop()
        async with self._lock:
            if self._consumer is None:
                self._consumer = await self._new_consumer()
            consumer = self._consumer
            try:
                return await self._guarded(consumer, work)
            except LogUnreadable:
                self._consumer = None  # a fresh one next time
                await consumer.stop()
                raise

    async def _guarded(self, consumer: AIOKafkaConsumer, work) -> UserEvents:
        """`work` (a read) on `consumer`, within the time bound, its failures as LogUnreadable."""
        try:
            return await asyncio.wait_for(work(consumer), self.timeout_s)
        except (KeyStoreUnavailable, KeyMissing) as exc:  # the keys that open the user's events
            raise LogUnreadable(f"the key store cannot open the user's events ({exc})", "postgres") from exc
        except asyncio.TimeoutError as exc:
            raise LogUnreadable(f"reading the log up to as_of took over {self.timeout_s:.0f} s") from exc
        except KafkaError as exc:
            raise LogUnreadable(f"the log cannot be read ({type(exc).__name__})") from exc

    async def _new_consumer(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    isolation_level="read_committed", fetch_max_wait_ms=20,
                                    max_partition_fetch_bytes=16 * 1024 * 1024,
                                    fetch_max_bytes=64 * 1024 * 1024, **kafka_security.client_options())
        try:
            await asyncio.wait_for(consumer.start(), self.timeout_s)
        except Exception as exc:
            await consumer.stop()
            raise LogUnreadable(f"the log cannot be read ({type(exc).__name__})") from exc
        return consumer

    def _read(self, tp: TopicPartition, user_id: str, moment: Moment, apply: Apply, destroyed: frozenset[int],
              resume: int | None):
        """The read, to run on a consumer."""
        return lambda consumer: self._read_on(consumer, tp, user_id, moment, apply, destroyed, resume)

    async def _read_on(self, consumer: AIOKafkaConsumer, tp: TopicPartition, user_id: str, moment: Moment,
                       apply: Apply, destroyed: frozenset[int], resume: int | None) -> UserEvents:
        began = time.perf_counter()
        consumer.assign([tp])
        beginning = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]  # read_committed: the last stable offset
        if moment.offset is not None and moment.offset >= end:
            raise InvalidAsOf(f"as_of token names partition {tp.partition} offset {moment.offset}, which the log has "
                              f"not reached (it ends at {end}): no write made this token")
        stop = end if moment.offset is None else moment.offset + 1
        if resume is not None:
            hint = resume
        else:
            hint = await self.first_offset(user_id, tp.partition) if self.first_offset is not None else None
        found = UserEvents(start=max(beginning, hint if hint is not None else beginning), next_offset=stop)
        key = user_id.encode()
        consumer.seek(tp, found.start)
        done, idle = found.start >= stop, 0
        while not done:
            batch = (await consumer.getmany(tp, timeout_ms=IDLE_MS, max_records=self.fetch_records)).get(tp, [])
            for record in batch:
                if record.offset >= stop:
                    done = True
                    break
                found.scanned += 1
                if record.key != key:
                    continue
                event = await self._opened(record, destroyed, found)
                if event is None or event.user_id != user_id:
                    continue
                if not moment.covers(record.offset, event.occurred_at):
                    done, found.next_offset = True, record.offset  # the prefix ends at the first event after it
                    break
                await apply(tp.partition, record.offset, event)
                found.events += 1
                found.last_offset = record.offset
            idle = 0 if batch else idle + 1
            position = await consumer.position(tp)
            # Done past the stop; or nothing comes just below it: a transaction marker is there (the
            # last record of a transactional log is one), which read_committed never returns. A token
            # names a record, which will come: only a forged one naming a marker waits that long.
            done = done or position >= stop or (position >= stop - 1 and idle >= (2 if moment.offset is None else 5))
        found.seconds = time.perf_counter() - began
        return found

    async def _opened(self, record, destroyed: frozenset[int], found: UserEvents) -> Event | None:
        ref = kafka_codec.seal_ref(record.headers)
        if ref is not None and ref[1] in destroyed:
            found.shredded += 1
            return None
        try:
            return await self.keys.decode(record.value, record.headers)
        except kafka_codec.Shredded:
            found.shredded += 1
            return None
