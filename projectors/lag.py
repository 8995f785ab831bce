"""How far each projection is behind the log: end offset minus applied position."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from adapters import postgres
from settings import EVENTS_PARTITIONS, EVENTS_TOPIC


async def postgres_lag(bootstrap: str, pg_dsn: str) -> dict[str, int]:
    """{"events": total in the log, "behind": not yet applied by the Postgres projection}."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(EVENTS_TOPIC, p) for p in range(EVENTS_PARTITIONS)])
    finally:
        await consumer.stop()
    pool = await postgres.create_pool(pg_dsn, min_size=1, max_size=1)
    try:
        applied = await postgres.applied_offsets(pool, "postgres", EVENTS_TOPIC)
    finally:
        await pool.close()
    # End offsets are "next offset to write"; applied positions are the last offset applied.
    behind = sum(end - (applied.get(tp.partition, -1) + 1) for tp, end in ends.items())
    return {"events": sum(ends.values()), "behind": behind}
