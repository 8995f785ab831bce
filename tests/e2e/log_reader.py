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


async def end_offsets(bootstrap: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(EVENTS_TOPIC, p) for p in range(EVENTS_PARTITIONS)])
        return {tp.partition: end for tp, end in ends.items()}
    finally:
        await consumer.stop()


async def appended(bootstrap: str, before: dict[int, int], token: str) -> list[tuple[bytes, object]]:
    """(key, decoded event) of every committed record from `before` up to the token, in log order
    (the event None for a record of an erased user)."""
    wanted = ConsistencyToken.decode(token)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False)
    await consumer.start()
    found = []
    try:
        async with opened() as open_record:
            for partition, last in wanted.offsets:
                tp = TopicPartition(EVENTS_TOPIC, partition)
                consumer.assign([tp])
                consumer.seek(tp, before.get(partition, 0))
                done = False
                while not done:
                    batch = await consumer.getmany(tp, timeout_ms=2000)
                    if not batch:
                        raise AssertionError(f"partition {partition} ended before offset {last}")
                    for record in batch[tp]:
                        found.append((record.key, await open_record(record)))
                        if record.offset >= last:
                            done = True
                            break
    finally:
        await consumer.stop()
    return found
