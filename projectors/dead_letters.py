"""The dead-letter topic: what projectors could not apply, and retrying it.

A dead letter keeps the original bytes, key and headers, plus `rs-dlq-error` (the
projection, the original topic/partition/offset, the error). A retry hands the decoded
event back to the same projection's own apply, at its original position (positions
never move back, so the retry changes only the data), and on success appends a
`rs-dlq-resolved` marker naming the dead letter's offset, so `list` stops showing it.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from adapters import kafka_codec, kafka_security
from domain import sealing
from projectors.applied import Applied, Projection
from settings import DLQ_TOPIC

RESOLVED_HEADER = "rs-dlq-resolved"


async def read_all(bootstrap: str, topic: str = DLQ_TOPIC, keys=None) -> list[dict]:
    """Every dead letter not yet resolved, oldest first. `keys` (a Keyring) opens the error
    text of a sealed record's letter; an erased user's stays unreadable."""
    quiet = logging.getLogger("aiokafka")
    quiet.setLevel(max(quiet.level, logging.ERROR))  # a caller may have silenced it further
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                **kafka_security.client_options())
    letters, resolved = {}, set()
    try:
        await consumer.start()  # inside the try: a broker that is down still closes the consumer
        partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(partitions)
        starts, ends = await consumer.beginning_offsets(partitions), await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, starts[tp])  # explicit: seek_to_beginning is lazy and raced position()
            while await consumer.position(tp) < ends[tp]:
                for record in (await consumer.getmany(tp, timeout_ms=2000)).get(tp, []):
                    headers = dict(record.headers or ())
                    if RESOLVED_HEADER in headers:
                        resolved.add((tp.partition, int(headers[RESOLVED_HEADER])))
                    elif "rs-dlq-error" in headers:
                        error = json.loads(headers["rs-dlq-error"])
                        letters[(tp.partition, record.offset)] = {
                            "dlq_partition": tp.partition, "dlq_offset": record.offset, **error,
                            "key": (record.key or b"").decode(errors="replace"),
                            "value": record.value, "headers": [h for h in record.headers if h[0] != "rs-dlq-error"],
                        }
    finally:
        await consumer.stop()
    found = [letter for where, letter in sorted(letters.items()) if where not in resolved]
    if keys is not None:
        for letter in found:
            if "sealed_error" in letter:
                letter.update(await _open_error(keys, letter))
    return found


async def _open_error(keys, letter: dict) -> dict:
    ref = kafka_codec.seal_ref(letter["headers"])
    try:
        key = await keys.store.lookup(*ref)
    except Exception as exc:  # the key store is down, or the key unknown: say so, keep the letter
        return {"error": f"(sealed; cannot open it: {type(exc).__name__})"}
    if key is None:
        return {"error": "(sealed; its user was erased)"}
    raw = base64.b64decode(letter["sealed_error"])
    return json.loads(sealing.unseal(key.material, raw, sealing.error_associated_data(*ref)))


async def retry(bootstrap: str, projection: Projection, letters: list[dict], topic: str = DLQ_TOPIC,
                on_result: Callable[[dict, str | None], Awaitable[None] | None] = lambda letter, error: None,
                keys=None) -> tuple[int, int]:
    """Apply each letter of `projection` again; returns (resolved, still failing). `keys`
    (a Keyring) opens sealed letters; a letter of an erased user resolves with nothing to apply."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                **kafka_security.client_options())
    await producer.start()
    done = failed = 0
    try:
        for letter in letters:
            if letter["projection"] != projection.name:
                continue
            try:
                try:
                    event = (kafka_codec.decode(letter["value"], letter["headers"]) if keys is None
                             else await keys.decode(letter["value"], letter["headers"]))
                except kafka_codec.Shredded:
                    event = None  # its user was erased: nothing left to apply
                await projection.apply_batch(letter["topic"], [Applied(letter["partition"], letter["offset"], event)])
            except Exception as exc:  # reported to the operator, the letter stays
                failed += 1
                on_result(letter, f"{type(exc).__name__}: {exc}")
                continue
            await producer.send_and_wait(topic, b"", key=letter["key"].encode(), partition=letter["dlq_partition"],
                                         headers=[(RESOLVED_HEADER, str(letter["dlq_offset"]).encode())])
            done += 1
            on_result(letter, None)
    finally:
        await producer.stop()
    return done, failed
