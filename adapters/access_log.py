"""The access log: reads that return memories append MemoryAccessed events to
`recallstack.memory.access`, in the background and in batches, never in the answer's way.

`AccessRecorder.record()` is a plain function call from the request path: it notes the
access on a bounded in-memory buffer (no await, no I/O, no event built yet). A flusher
appends what is buffered every `interval_s`, or as soon as `batch_size` accesses wait,
each batch one Kafka transaction through EventPublisher (read_committed readers see a
batch whole or not at all).

The flusher runs on its own thread with its own event loop, not as a task on the
serving loop: encoding an access event costs 35-100 us of pure Python (kafka_codec,
half of it the UUID checks), so a 500-event batch encoded on the serving loop blocks
every request on it for 20-50 ms at a time. On its own thread it only competes for the
GIL, which the interpreter hands back every 5 ms. Measured on this 2-core machine while
shared (load 5-8), flushing 10,000 events: serving-loop stalls p50 1.4-2.8 ms / p99
23-27 ms with the thread, p50 6.6-7.7 ms / p99 33-64 ms with an in-loop task. The UUIDs
and event objects are built on that thread too: record() itself costs ~3-6 us.

Access is best effort, unlike a command: it is a ranking and decay signal, nobody was
promised it was stored, and losing some under overload or an outage only makes some
memories look a little less used. So when the buffer is full the newest access is
dropped (and counted in `recallstack_access_events_dropped_total`) instead of making a
read wait or memory grow without bound. While Kafka is down the buffered accesses stay
(up to the bound) and the flusher retries with backoff, warning once per outage.

Delivery is at least once in one corner: a transaction whose commit reached the broker
but whose acknowledgement did not (a timeout) is retried with the same event ids, so a
consumer that must count exactly dedupes by event_id.

One recorder per process: the gauge shows its buffer, and its transactional id (host and
pid) would fence a second one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections import deque
from datetime import datetime, timezone
from typing import Iterable, NamedTuple

from prometheus_client import Counter, Gauge

from adapters import kafka_codec, observability
from adapters.kafka_log import EventPublisher, LogUnavailable
from domain.events import MemoryAccessed
from settings import ACCESS_TOPIC

log = logging.getLogger(__name__)

ACCESS_SOURCES = frozenset({"search", "get", "context", "list"})

DROPPED = Counter("recallstack_access_events_dropped_total",
                  "Access events dropped: buffer_full (the newest, while the buffer is full), unencodable "
                  "(a bug, e.g. a memory id that is not a UUID), shutdown (not appended by stop())", ["reason"])
APPENDED = Counter("recallstack_access_events_appended_total", "Access events appended to the access topic")
FLUSH_FAILURES = Counter("recallstack_access_flush_failures_total", "Access batches Kafka did not acknowledge")
BUFFERED = Gauge("recallstack_access_buffered_events", "Access events waiting in memory to be appended")


class _Access(NamedTuple):
    """What record() keeps: the event is built on the flusher's thread, off the request path."""
    user_id: str
    memory_ids: tuple[str, ...]
    source: str
    query: str | None
    actor: str | None
    correlation_id: str | None
    occurred_at: datetime

    def event(self) -> MemoryAccessed:
        envelope = {"correlation_id": self.correlation_id} if self.correlation_id else {}
        return MemoryAccessed(user_id=self.user_id, actor=self.actor or f"user:{self.user_id}",
                              occurred_at=self.occurred_at,
                              memory_ids=tuple(map(str, self.memory_ids)),  # asyncpg hands out uuid.UUID
                              source=self.source, query=self.query, **envelope)


class AccessRecorder:
    def __init__(self, bootstrap: str, *, topic: str = ACCESS_TOPIC, max_buffer: int = 10_000,
                 batch_size: int = 500, interval_s: float = 0.5, max_backoff_s: float = 10.0,
                 publish_timeout_s: float = 5.0, stop_timeout_s: float = 5.0, transactional_id: str | None = None,
                 keys=None):
        if max_buffer < 1 or batch_size < 1 or interval_s <= 0:
            raise ValueError("max_buffer and batch_size must be >= 1 and interval_s > 0")
        self.bootstrap = bootstrap
        self.keys = keys  # a Keyring: access events carry the query text, sealed like any user content
        self.topic = topic
        self.max_buffer = max_buffer
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self.publish_timeout_s = publish_timeout_s  # a background batch may wait longer than a command (1.8 s)
        self.stop_timeout_s = stop_timeout_s
        self.transactional_id = transactional_id or f"recallstack-access-{socket.gethostname()}-{os.getpid()}"
        # record() appends on the right (any thread), only the flusher pops on the left:
        # both are atomic on a deque, so no lock is needed on the request path.
        self._buffer: deque[_Access] = deque()
        self._pending: list[MemoryAccessed] = []  # taken off the buffer, built once: retries keep their event ids
        self._wake_pending = False  # a full batch waits: record() asked the flusher to come now
        self._stop_requested = threading.Event()
        self._stop_deadline = 0.0
        self._in_outage = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the flusher thread's loop
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    @property
    def buffered(self) -> int:
        """Accesses recorded and not yet appended."""
        return len(self._buffer) + len(self._pending)

    def record(self, user_id: str, memory_ids: Iterable[str], source: str, query: str | None = None,
               actor: str | None = None, correlation_id: str | None = None) -> None:
        """Note that `user_id` was shown `memory_ids` (in the order shown). Never blocks, never does I/O."""
        memory_ids = tuple(memory_ids)
        if not memory_ids:
            return
        if source not in ACCESS_SOURCES:  # a constant at each call site: a bug, so say it loudly
            raise ValueError(f"source must be one of {sorted(ACCESS_SOURCES)}, got {source!r}")
        size = len(self._buffer) + len(self._pending)
        if size >= self.max_buffer:
            DROPPED.labels("buffer_full").inc()
            return
        # The request's correlation id (X-Request-ID) unless the caller names one.
        self._buffer.append(_Access(user_id, memory_ids, source, query, actor,
                                    correlation_id or observability.correlation_id(), datetime.now(timezone.utc)))
        BUFFERED.set(size + 1)
        if size + 1 >= self.batch_size and not self._wake_pending:
            self._wake_pending = True
            self._call_flusher(self._set_wake)

    def start(self) -> None:
        """Start the flusher thread (what was recorded before is flushed too). Needs no event loop."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop_requested.clear()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), name="access-log-flusher",
                                        daemon=True)  # a flusher stuck on Kafka must not keep the process alive
        self._thread.start()

    async def stop(self, timeout_s: float | None = None) -> None:
        """Flush what is buffered (for at most `timeout_s`), then stop; what is left is dropped and counted."""
        timeout = self.stop_timeout_s if timeout_s is None else timeout_s
        if self._thread is None and self.buffered:
            self.start()
        thread = self._thread
        if thread is not None:
            self._stop_deadline = time.monotonic() + timeout
            self._stop_requested.set()
            self._call_flusher(self._set_wake)
            await asyncio.to_thread(thread.join, timeout)
            if thread.is_alive():  # still inside a publish: cut it short
                self._call_flusher(lambda: self._task is not None and self._task.cancel())
                await asyncio.to_thread(thread.join, 1.0)
            self._thread = None
        left = self.buffered
        if left:
            self._buffer.clear()
            self._pending = []
            DROPPED.labels("shutdown").inc(left)
            log.warning("access log: %d access events were not appended before shutdown (Kafka unavailable)", left)
        BUFFERED.set(0)

    # --- the flusher thread ---------------------------------------------------------------

    def _call_flusher(self, callback) -> None:
        loop = self._loop
        if loop is None:
            return  # not running yet: it looks at the buffer as soon as it starts
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:
            pass  # its loop just closed: it is gone, nothing to wake

    def _set_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _serve(self) -> None:
        self._wake = asyncio.Event()
        publisher = EventPublisher(self.bootstrap, topic=self.topic, timeout_s=self.publish_timeout_s,
                                   transactional_id=self.transactional_id, keys=self.keys)
        self._task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        try:
            await self._run(publisher)
        except asyncio.CancelledError:
            pass  # stop() gave up on a publish
        finally:
            self._loop = None
            await publisher.stop()
            if self.keys is not None:
                await self.keys.store.close()  # this loop's pool

    async def _run(self, publisher: EventPublisher) -> None:
        backoff = 0.0
        while True:
            stopping = self._stop_requested.is_set()
            if backoff and stopping:  # keep trying until stop()'s deadline, gently
                await asyncio.sleep(min(backoff, 0.25))
            elif backoff:  # Kafka is down: only a stop cuts the pause short, not full batches
                await _wait(self._wake, backoff, until=lambda: self._stop_requested.is_set())
            elif not stopping and self.buffered < self.batch_size:
                await _wait(self._wake, self.interval_s)
            self._wake.clear()
            self._wake_pending = False
            try:
                flushed = await self._flush_buffered(publisher)
            except Exception:  # a bug must not end access logging for the life of the process
                log.exception("access log: flush failed unexpectedly")
                flushed = False
            if self._stop_requested.is_set() and (flushed or time.monotonic() >= self._stop_deadline):
                return
            backoff = 0.0 if flushed else min(self.max_backoff_s, max(self.interval_s, backoff * 2))

    async def _flush_buffered(self, publisher: EventPublisher) -> bool:
        """Append everything buffered, batch by batch; False when Kafka did not acknowledge."""
        while self._pending or self._buffer:
            if not self._pending:
                take = min(self.batch_size, len(self._buffer))
                self._pending = [self._buffer.popleft().event() for _ in range(take)]
            try:
                await publisher.publish(self._pending)
            except LogUnavailable as exc:
                FLUSH_FAILURES.inc()
                if not self._in_outage:
                    self._in_outage = True
                    log.warning("access log: Kafka unavailable (%s); keeping up to %d access events buffered "
                                "and retrying", exc, self.max_buffer)
                return False
            except Exception:
                if not self._drop_unencodable():
                    raise
                continue
            APPENDED.inc(len(self._pending))
            self._pending = []
            BUFFERED.set(self.buffered)
            if self._in_outage:
                self._in_outage = False
                log.warning("access log: Kafka is back; appending the buffered access events")
        return True

    def _drop_unencodable(self) -> int:
        """Drop the pending events that cannot be encoded (they would fail every retry)."""
        good = []
        for event in self._pending:
            try:
                kafka_codec.encode(event)
                good.append(event)
            except Exception as exc:
                log.error("access log: dropping an access event that cannot be encoded: %s", exc)
        dropped = len(self._pending) - len(good)
        self._pending = good
        if dropped:
            DROPPED.labels("unencodable").inc(dropped)
            BUFFERED.set(self.buffered)
        return dropped


async def _wait(event: asyncio.Event, timeout: float, until=None) -> None:
    """Wait for `event` at most `timeout`; with `until`, a set event only ends the wait once until() is true."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            await asyncio.wait_for(event.wait(), remaining)
        except asyncio.TimeoutError:
            return
        if until is None or until():
            return
        event.clear()
