"""Reading the real event log in tests: where it ends, and what a write appended."""

from __future__ import annotations

from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, TopicPartition

from adapters import kafka_codec
from domain.consistency import ConsistencyToken
from settings import EVENTS_PARTITIONS, EVENTS_TOPIC


@asynccontextmanager
async def opened():
    """open(record) -> the event, as projectors read it: sealed records with the key store
    (bootstrap's keyring), None for a record of an erased user."""
    import bootstrap

    keys = bootstrap.keyring()

    async def open_record(record):
        try:
            return await keys.decode(record.value, record.headers)
        except kafka_codec.Shredded:
            return None
    try:
        yield open_record
    finally:
        await keys.store.close()  # this event loop's pool


async def end_offsets(bootstrap: str, committed: bool = True, topic: str = EVENTS_TOPIC,
                      partitions: int = EVENTS_PARTITIONS) -> dict[int, int]:
    """Each partition's end: the last stable offset (committed), or the high watermark. A mark
    taken before a write needs the high watermark: another producer's open transaction holds
    the last stable offset back, behind records already acknowledged, which a read from that
    mark would then count as the write's."""
    isolation = "read_committed" if committed else "read_uncommitted"
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: end for tp, end in ends.items()}
    finally:
        await consumer.stop()


async def appended(bootstrap: str, before: dict[int, int], token: str) -> list[tuple[bytes, object]]:
    """(key, decoded event) of every committed record from `before` up to the token, in log order
    (the event None for a record of an erased user)."""
    offsets = ConsistencyToken.decode(token).offsets
    return await records_between(bootstrap, before, {partition: last + 1 for partition, last in offsets})


async def appended_since(bootstrap: str, before: dict[int, int]) -> list[tuple[bytes, object]]:
    """(key, decoded event) of every committed record from `before` to the log's end now."""
    ends = await end_offsets(bootstrap, committed=False)
    return await records_between(bootstrap, before, {p: end for p, end in ends.items() if end > before.get(p, 0)})


async def records_between(bootstrap: str, before: dict[int, int], ends: dict[int, int]) -> list[tuple[bytes, object]]:
    """Records from the offsets in `before` (the first to read) up to those in `ends` (the first
    not to read), partition by partition. Reading stops on the consumer's position, not on a
    record: a transaction's commit marker takes an offset no consumer ever receives."""
    if not ends:
        return []  # and no consumer: aiokafka's stop() right after start() raises CancelledError
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False)
    await consumer.start()
    found = []
    try:
        async with opened() as open_record:
            for partition, end in ends.items():
                tp = TopicPartition(EVENTS_TOPIC, partition)
                consumer.assign([tp])
                consumer.seek(tp, before.get(partition, 0))
                idle = 0
                while await consumer.position(tp) < end:
                    batch = await consumer.getmany(tp, timeout_ms=1000)
                    idle = 0 if batch else idle + 1
                    if idle == 10:
                        raise AssertionError(f"partition {partition} ended before offset {end}")
                    found += [(r.key, await open_record(r)) for r in batch.get(tp, ()) if r.offset < end]
    finally:
        await consumer.stop()
    return found
