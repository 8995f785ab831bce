"""How far each projector is behind the log.

Measured as the log's end minus the consumer group's committed position: both count the
transaction markers that follow every append, which the read model's own positions
(data offsets) cannot see. The group commits right after the read model's transaction.
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from adapters import kafka_security
from settings import EVENTS_PARTITIONS, EVENTS_TOPIC, projector_group


group_of = projector_group  # the name the callers know


async def projector_lag(bootstrap: str, projection: str, group: str | None = None) -> dict[str, int]:
    """{"events": records in the log (markers included), "behind": not yet applied} of a
    projector (or of any consumer group of the log, e.g. the extraction worker's)."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group or group_of(projection),
                                enable_auto_commit=False, request_timeout_ms=3000, **kafka_security.client_options())
    try:
        await consumer.start()  # inside the try: a broker that is down still closes the consumer
        parts = [TopicPartition(EVENTS_TOPIC, p) for p in range(EVENTS_PARTITIONS)]
        ends = await consumer.end_offsets(parts)
        behind = 0
        for tp in parts:
            committed = await consumer.committed(tp)
            behind += max(0, ends[tp] - (committed or 0))
        return {"events": sum(ends.values()), "behind": behind}
    finally:
        await consumer.stop()
