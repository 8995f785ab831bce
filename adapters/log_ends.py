"""Where each partition of the event log ends, read from Kafka on demand.

The APIs ask only when a consistency token is not yet applied at its first check: an offset
at or past its partition's end names no record, so the token cannot come from a write and is
refused (400) instead of waited for (domain/consistency.py). The consumer (no group, nothing
consumed) is started on first use, so an API starts and reads while Kafka is down; a lookup
that fails or is slow decides nothing (the wait goes on as before).
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from adapters import kafka_security

log = logging.getLogger(__name__)


class LogEnds:
    def __init__(self, bootstrap: str, topic: str, partitions: int, timeout_s: float = 1.0):
        self.bootstrap, self.timeout_s = bootstrap, timeout_s
        self._partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> dict[int, int]:
        """partition -> the offset the next record will get (the high watermark: every
        acknowledged write is below it)."""
        consumer = await self._started()
        try:
            ends = await asyncio.wait_for(consumer.end_offsets(self._partitions), self.timeout_s)
        except Exception:
            await self._drop(consumer)
            raise
        return {tp.partition: end for tp, end in ends.items()}

    async def _started(self) -> AIOKafkaConsumer:
        async with self._lock:
            if self._consumer is None:
                consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                            request_timeout_ms=int(self.timeout_s * 1000) + 1000,
                                            **kafka_security.client_options())
                try:
                    await asyncio.wait_for(consumer.start(), self.timeout_s)
                except BaseException:
                    await _stopped(consumer)
                    raise
                self._consumer = consumer
            return self._consumer

    async def _drop(self, consumer: AIOKafkaConsumer) -> None:
        """A consumer whose lookup failed is closed; the next lookup starts a fresh one."""
        async with self._lock:
            if self._consumer is consumer:
                self._consumer = None
        await _stopped(consumer)

    async def close(self) -> None:
        if self._consumer is not None:
            await _stopped(self._consumer)
            self._consumer = None


async def _stopped(consumer: AIOKafkaConsumer) -> None:
    try:
        await consumer.stop()
    except Exception:
        log.debug("stopping the log-ends consumer failed", exc_info=True)
