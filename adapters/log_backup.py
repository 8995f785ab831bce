"""Backup and restore of the whole event log: Kafka topics to and from Avro container files.

A backup is a folder:

    manifest.json                          what is in it, with every file's size and SHA-256
    <topic>/p<partition>-<chunk>.avro      the records of one partition, in offset order

Each Avro object container file (fastavro; snappy when cramjam is installed, else deflate)
holds `LogRecord`s: partition, offset, timestamp (ms) and its type, key, value and headers,
exactly as read. Values are opaque bytes: never decoded (a value may be encrypted, or not
an event at all, like a dead letter's original bytes).

What is read: every partition of the recallstack topics (settings: the events, access and
dead-letter topics) with isolation_level=read_committed, from the beginning up to the end
offsets taken when the backup starts (the last stable offset: a transaction still open then
is not part of the backup, nor is anything appended after). Aborted transactional records
and transaction markers are not records of the log and are not in the backup.

Atomic: files are written into a sibling temporary folder, fsynced, the manifest last, and
the folder is renamed to its name only when complete. A crash leaves at most a
`.<name>.partial-*` folder beside it, never a half backup under the name.

Restore checks the manifest and every file's size and SHA-256 first: a missing or corrupt
file is named and nothing is written. It refuses topics that hold records (unless told
otherwise), creates missing topics with the backup's partition counts and configs, and
produces each partition's records in order into the same partition with the original key,
headers and timestamp (idempotent producer, acks=all). Kafka assigns new offsets: the
source's transaction markers and aborted records took offsets the restored log does not
have, so a partition's records keep their order but not their offsets. Read models are then
rebuilt from the restored log (docs/operations.md, "Backup and restore").
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path

from fastavro import parse_schema, reader as avro_reader
from fastavro.write import Writer

from adapters import kafka_security
from adapters.durable_files import fsync_dir
from settings import ACCESS_TOPIC, DLQ_TOPIC, EVENTS_TOPIC

FORMAT = "recallstack.log-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BACKUP_TOPICS = (EVENTS_TOPIC, ACCESS_TOPIC, DLQ_TOPIC)
CHUNK_RECORDS = 500_000  # records per file: a partition of millions spans several files
PRODUCE_BATCH_BYTES = 512 * 1024  # under the broker's default max.message.bytes (1 MiB)
IN_FLIGHT_BATCHES = 64
INTERLEAVE_RECORDS = 500  # records of one partition before the next one's turn

RECORD_SCHEMA = {
    "type": "record", "name": "LogRecord", "namespace": "recallstack.backup",
    "doc": "One Kafka record as it was in the log; value and key are opaque bytes.",
    "fields": [
        {"name": "partition", "type": "int"},
        {"name": "offset", "type": "long", "doc": "its offset in the source log"},
        {"name": "timestamp", "type": "long", "doc": "epoch milliseconds"},
        {"name": "timestamp_type", "type": "int", "doc": "0 CreateTime, 1 LogAppendTime"},
        {"name": "key", "type": ["null", "bytes"]},
        {"name": "value", "type": ["null", "bytes"]},
        {"name": "headers", "type": {"type": "array", "items": {
            "type": "record", "name": "Header",
            "fields": [{"name": "key", "type": "string"}, {"name": "value", "type": ["null", "bytes"]}]}}},
    ],
}
_PARSED = parse_schema(RECORD_SCHEMA)


def codec() -> str:
    """snappy when fastavro can use it (cramjam installed), else deflate (always there)."""
    try:
        import cramjam  # noqa: F401

        return "snappy"
    except ImportError:
        return "deflate"


class BackupError(RuntimeError):
    """A backup could not be made (the folder exists, Kafka did not answer in time, ...)."""


class BackupInvalid(RuntimeError):
    """The backup folder is not a complete, intact backup; `problems` names each file."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        super().__init__(shown)


class TargetNotEmpty(RuntimeError):
    """The target cluster holds records in the topics a restore would write."""

    def __init__(self, occupied: dict[str, dict[int, int]]):
        self.occupied = occupied
        parts = []
        for topic, ends in occupied.items():
            filled = {p: o for p, o in sorted(ends.items()) if o > 0}
            parts.append(f"{topic} ({sum(filled.values()):,} positions; end offsets "
                         + ", ".join(f"p{p}={o}" for p, o in filled.items()) + ")")
        super().__init__("the target topics are not empty: " + "; ".join(parts))


class TargetMismatch(RuntimeError):
    """A target topic exists with another partition count than the backup's."""


# (done, total): log positions covered (transaction markers included), records, bytes.
@dataclass
class Progress:
    positions: int = 0
    positions_total: int = 0
    records: int = 0
    records_total: int | None = None
    bytes: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


OnProgress = Callable[[Progress], None]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("recallstack")
    except PackageNotFoundError:
        return "unknown"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ---- backup ---------------------------------------------------------------------------------


class _PartitionFiles:
    """The files of one partition: a new one every CHUNK_RECORDS records."""

    def __init__(self, root: Path, topic: str, partition: int, codec_name: str, chunk_records: int):
        self.root, self.topic, self.partition = root, topic, partition
        self.codec, self.chunk_records = codec_name, chunk_records
        self.files: list[dict] = []
        self._handle = None
        self._writer: Writer | None = None

    def write(self, record: dict) -> None:
        if self._writer is None or self.files[-1]["records"] >= self.chunk_records:
            self._close_current()
            relative = f"{self.topic}/p{self.partition:03d}-{len(self.files):04d}.avro"
            path = self.root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(path, "wb")
            self._writer = Writer(self._handle, _PARSED, codec=self.codec, sync_interval=256 * 1024, metadata={
                "recallstack.topic": self.topic, "recallstack.partition": str(self.partition)})
            self.files.append({"path": relative, "topic": self.topic, "partition": self.partition, "records": 0,
                               "first_offset": record["offset"], "last_offset": record["offset"]})
        self._writer.write(record)
        entry = self.files[-1]
        entry["records"] += 1
        entry["last_offset"] = record["offset"]

    def _close_current(self) -> None:
        if self._writer is None:
            return
        self._writer.flush()
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        entry = self.files[-1]
        path = self.root / entry["path"]
        entry["bytes"] = path.stat().st_size
        entry["sha256"] = _sha256(path)
        self._writer = self._handle = None

    def close(self) -> list[dict]:
        self._close_current()
        return self.files


async def _cluster_id(bootstrap: str) -> str | None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000,
                                **kafka_security.client_options())
    try:
        await admin.start()
        return (await admin.describe_cluster()).get("cluster_id")
    finally:
        await admin.close()


async def _topic_configs(bootstrap: str, topics: list[str]) -> dict[str, dict[str, str]]:
    """The configs set on each topic itself (retention, cleanup policy, ...; not the broker's
    defaults), which a restore creates the topic with. {} for a topic Kafka says nothing of."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs v1+ config_source
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000,
                                **kafka_security.client_options())
    out: dict[str, dict[str, str]] = {}
    try:
        await admin.start()
        for response in await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]):
            for _code, _message, _kind, name, entries in response.resources:
                chosen = {}
                for entry in entries:
                    key, value, _read_only, source_or_default, sensitive = entry[:5]
                    own = (source_or_default == DYNAMIC_TOPIC_CONFIG if response.API_VERSION >= 1
                           else not source_or_default)
                    if own and not sensitive and value is not None:
                        chosen[key] = value
                out[name] = chosen
    finally:
        await admin.close()
    return out


def _prepare_target(directory: Path) -> Path:
    """The temporary sibling folder to write into; refuses a DIR that exists and is not empty."""
    directory = directory.absolute()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise BackupError(f"{directory} exists and is not an empty folder; choose a new one")
    directory.parent.mkdir(parents=True, exist_ok=True)
    temporary = directory.parent / f".{directory.name}.partial-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    return temporary


async def backup(bootstrap: str, directory: Path, topics: tuple[str, ...] = BACKUP_TOPICS,
                 on_progress: OnProgress = lambda progress: None, chunk_records: int = CHUNK_RECORDS,
                 stall_timeout_s: float = 60.0) -> dict:
    """Back up `topics` into the new folder `directory`; returns the manifest."""
    from aiokafka import AIOKafkaConsumer

    directory = Path(directory).absolute()
    temporary = _prepare_target(directory)
    codec_name = codec()
    progress = Progress()
    files: dict = {}
    try:
        cluster_id = await _cluster_id(bootstrap)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level="read_committed", fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024, request_timeout_ms=30000, **kafka_security.client_options())
        try:
            await consumer.start()
            log = await _LogRange.assign(consumer, bootstrap, topics)
            progress.positions_total = log.positions
            for tp in log.partitions:
                files[tp] = _PartitionFiles(temporary, tp.topic, tp.partition, codec_name, chunk_records)
            await _copy(consumer, log, files, progress, on_progress, stall_timeout_s)
        finally:
            await consumer.stop()
        manifest = _manifest(bootstrap, cluster_id, codec_name, log, files, progress)
        _put_in_place(temporary, directory, manifest)
        return manifest
    except BaseException:
        for writer in files.values():
            try:
                writer.close()
            except Exception:
                pass
        shutil.rmtree(temporary, ignore_errors=True)
        raise


@dataclass
class _LogRange:
    """What a backup copies: each partition of the topics from its first offset to its last
    stable one (read_committed), as it was when the backup began."""

    topics: tuple[str, ...]
    partitions: list  # of aiokafka TopicPartition
    counts: dict[str, int]  # partitions per topic (0: the topic does not exist)
    configs: dict[str, dict[str, str]]
    beginnings: dict
    ends: dict

    @property
    def positions(self) -> int:
        return sum(self.ends[tp] - self.beginnings[tp] for tp in self.partitions)

    @classmethod
    async def assign(cls, consumer, bootstrap: str, topics: tuple[str, ...]) -> "_LogRange":
        """Assign the consumer every partition of `topics`, each at its beginning (the empty ones paused)."""
        from aiokafka import TopicPartition

        cluster = await consumer._client.fetch_all_metadata()  # no subscription: ask the cluster
        partitions: list[TopicPartition] = []
        counts: dict[str, int] = {}
        for topic in topics:
            found = sorted(cluster.partitions_for_topic(topic) or ())
            counts[topic] = len(found)
            partitions += [TopicPartition(topic, p) for p in found]
        if not partitions:
            raise BackupError(f"none of the topics {', '.join(topics)} exists at {bootstrap}")
        configs = await _topic_configs(bootstrap, [t for t in topics if counts[t]])
        consumer.assign(partitions)
        beginnings = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)  # read_committed: the last stable offsets
        log = cls(topics, partitions, counts, configs, beginnings, ends)
        pending = log.pending()
        for tp in pending:
            consumer.seek(tp, beginnings[tp])
        consumer.pause(*[tp for tp in partitions if tp not in pending])
        return log

    def pending(self) -> set:
        return {tp for tp in self.partitions if self.ends[tp] > self.beginnings[tp]}


async def _copy(consumer, log: _LogRange, files: dict, progress: Progress, on_progress: OnProgress,
                stall_timeout_s: float) -> None:
    """Write every record of the range into its partition's files; BackupError when no partition
    moves for `stall_timeout_s`."""
    ends, pending = log.ends, log.pending()
    positions = dict(log.beginnings)
    last_progress = time.monotonic()
    on_progress(progress)
    while pending:
        batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=20_000)
        for tp, messages in batches.items():
            writer, end = files[tp], ends[tp]
            for m in messages:
                if m.offset >= end:
                    break
                writer.write({
                    "partition": m.partition, "offset": m.offset, "timestamp": m.timestamp,
                    "timestamp_type": m.timestamp_type, "key": m.key, "value": m.value,
                    "headers": [{"key": k, "value": v} for k, v in (m.headers or ())]})
                progress.records += 1
                progress.bytes += len(m.value or b"") + len(m.key or b"")
        for tp in list(pending):
            position = min(await consumer.position(tp), ends[tp])
            if position != positions[tp]:
                last_progress = time.monotonic()
            progress.positions += position - positions[tp]
            positions[tp] = position
            if position >= ends[tp]:
                pending.discard(tp)
                consumer.pause(tp)
        if time.monotonic() - last_progress > stall_timeout_s:
            stuck = ", ".join(f"{tp.topic}/{tp.partition} at {positions[tp]} of {ends[tp]}" for tp in sorted(pending))
            raise BackupError(f"no progress for {stall_timeout_s:.0f}s reading {stuck}")
        on_progress(progress)


def _manifest(bootstrap: str, cluster_id: str | None, codec_name: str, log: _LogRange, files: dict,
              progress: Progress) -> dict:
    """Close the files and describe the backup: per topic its partitions, records and files."""
    from adapters.kafka_log import TOPICS

    file_entries: list[dict] = []
    topic_entries: dict[str, dict] = {}
    for topic in log.topics:
        if log.counts[topic] == 0:
            continue
        detail = []
        for tp in [tp for tp in log.partitions if tp.topic == topic]:
            written = files[tp].close()
            file_entries += written
            detail.append({"partition": tp.partition, "records": sum(f["records"] for f in written),
                           "first_offset": written[0]["first_offset"] if written else None,
                           "last_offset": written[-1]["last_offset"] if written else None,
                           "log_start_offset": log.beginnings[tp], "log_end_offset": log.ends[tp],
                           "files": [f["path"] for f in written]})
        topic_entries[topic] = {
            "partitions": log.counts[topic], "records": sum(d["records"] for d in detail),
            "configs": log.configs.get(topic) or (dict(TOPICS[topic][1]) if topic in TOPICS else {}),
            "partition_detail": detail}
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "recallstack_version": _version(),
        "created_at": datetime.now(timezone.utc).isoformat(),
        "source": {"bootstrap": bootstrap, "cluster_id": cluster_id, "isolation_level": "read_committed"},
        "codec": codec_name, "record_schema": RECORD_SCHEMA, "records": progress.records,
        "value_bytes": progress.bytes, "bytes": sum(f["bytes"] for f in file_entries),
        "seconds": round(progress.seconds, 3), "topics": topic_entries, "files": file_entries,
    }


def _put_in_place(temporary: Path, directory: Path, manifest: dict) -> None:
    """Write the manifest, make everything durable, and rename the temporary folder to `directory`."""
    with open(temporary / MANIFEST, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    for folder in {temporary / topic for topic in manifest["topics"]} | {temporary}:
        if folder.exists():
            fsync_dir(folder)
    if directory.exists():
        directory.rmdir()  # empty (checked above): the rename takes its place
    os.rename(temporary, directory)
    fsync_dir(directory.parent)


# ---- verify ---------------------------------------------------------------------------------


def read_manifest(directory: Path) -> dict:
    """The manifest, checked for shape; raises BackupInvalid naming what is wrong."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise BackupInvalid([f"{directory} is not a folder"])
    if not path.exists():
        raise BackupInvalid([f"{path} is missing (not a backup, or an incomplete one)"])
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BackupInvalid([f"{path} is not valid JSON: {exc}"]) from None
    problems = []
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupInvalid([f"{path} is not a {FORMAT} manifest"])
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupInvalid([f"{path}: format_version {manifest.get('format_version')!r} is not supported "
                             f"(this recallstack reads {FORMAT_VERSION})"])
    for key in ("topics", "files"):
        if not isinstance(manifest.get(key), (dict if key == "topics" else list)):
            problems.append(f"{path}: {key} is missing or malformed")
    if problems:
        raise BackupInvalid(problems)
    listed = {f.get("path") for f in manifest["files"]}
    for topic, entry in manifest["topics"].items():
        for detail in entry.get("partition_detail", []):
            counted = sum(f["records"] for f in manifest["files"]
                          if f["topic"] == topic and f["partition"] == detail["partition"])
            if counted != detail["records"]:
                problems.append(f"{path}: {topic} partition {detail['partition']} says {detail['records']} records, "
                                f"its files {counted}")
            problems += [f"{path}: {topic} partition {detail['partition']} lists {name}, which is not among the files"
                         for name in detail.get("files", []) if name not in listed]
    for entry in manifest["files"]:
        name = str(entry.get("path", ""))
        if name.startswith("/") or ".." in Path(name).parts or entry.get("topic") not in manifest["topics"]:
            problems.append(f"{path}: file entry {name!r} is not a file of this backup")
    if problems:
        raise BackupInvalid(problems)
    return manifest


def verify(directory: Path, on_file: Callable[[dict, int], None] = lambda entry, done: None) -> dict:
    """Check the manifest and every file's size and SHA-256; returns the manifest. Raises
    BackupInvalid naming every missing, truncated or corrupt file (all of them, not the first)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    problems = []
    for index, entry in enumerate(manifest["files"]):
        path = directory / entry["path"]
        if not path.is_file():
            problems.append(f"{entry['path']}: missing")
        elif path.stat().st_size != entry["bytes"]:
            problems.append(f"{entry['path']}: {path.stat().st_size:,} bytes, the manifest says {entry['bytes']:,}")
        elif _sha256(path) != entry["sha256"]:
            problems.append(f"{entry['path']}: SHA-256 differs from the manifest's "
                            "(the file is corrupt or was changed)")
        on_file(entry, index + 1)
    if problems:
        raise BackupInvalid(problems)
    return manifest


# ---- restore --------------------------------------------------------------------------------


async def target_offsets(bootstrap: str, topics: list[str]) -> dict[str, dict[int, int] | None]:
    """Each topic's end offsets per partition (every record counts, aborted ones too), or
    None for a topic that does not exist."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                request_timeout_ms=30000, **kafka_security.client_options())
    try:
        await consumer.start()
        cluster = await consumer._client.fetch_all_metadata()
        out: dict[str, dict[int, int] | None] = {}
        for topic in topics:
            found = sorted(cluster.partitions_for_topic(topic) or ())
            if not found:
                out[topic] = None
                continue
            ends = await consumer.end_offsets([TopicPartition(topic, p) for p in found])
            out[topic] = {tp.partition: o for tp, o in ends.items()}
        return out
    finally:
        await consumer.stop()


async def _create_topics(bootstrap: str, manifest: dict, existing: dict[str, dict | None]) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    from adapters.kafka_log import TOPICS, ensure_topics, replication_factor

    missing = [topic for topic in manifest["topics"] if existing.get(topic) is None]
    if missing:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000,
                                    **kafka_security.client_options())
        await admin.start()
        try:
            # The backup's partition counts and configs; a topic of the contract the backup lacks
            # (an older backup) is created as ensure_topics would. Copies: the target cluster's.
            copies = await replication_factor(admin)
            await admin.create_topics([NewTopic(
                topic, num_partitions=manifest["topics"][topic]["partitions"], replication_factor=copies,
                topic_configs=manifest["topics"][topic].get("configs") or dict(TOPICS.get(topic, (0, {}))[1]))
                for topic in missing])
        except TopicAlreadyExistsError:
            pass
        finally:
            await admin.close()
    await ensure_topics(bootstrap)
    return missing


def _records(directory: Path, entry: dict):
    with open(directory / entry["path"], "rb") as f:
        yield from avro_reader(f)


class _partition_records:
    """One partition's records from its files in order, each file's count and the offsets'
    order checked on the way (BackupInvalid); `done` once exhausted."""

    def __init__(self, directory: Path, entries: list[dict]):
        self.done = False
        self._records = self._read(directory, entries)

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        try:
            return next(self._records)
        except StopIteration:
            self.done = True
            raise

    @staticmethod
    def _read(directory: Path, entries: list[dict]):
        last_offset = None
        for entry in entries:
            count = 0
            for record in _records(directory, entry):
                if record["partition"] != entry["partition"] or (
                        last_offset is not None and record["offset"] <= last_offset):
                    raise BackupInvalid([f"{entry['path']}: record at offset {record['offset']} is out of place"])
                last_offset = record["offset"]
                count += 1
                yield record
            if count != entry["records"]:
                raise BackupInvalid([f"{entry['path']}: holds {count} records, the manifest says {entry['records']}"])


async def restore(bootstrap: str, directory: Path, manifest: dict | None = None, allow_non_empty: bool = False,
                  on_progress: OnProgress = lambda progress: None,
                  on_verify: Callable[[dict, int], None] = lambda entry, done: None) -> dict:
    """Verify the backup, check the target, create the topics, produce every record in
    order into its partition. Returns a summary. Raises BackupInvalid (nothing written),
    TargetNotEmpty / TargetMismatch (nothing written)."""
    from aiokafka import AIOKafkaProducer

    directory = Path(directory)
    manifest = verify(directory, on_verify) if manifest is None else manifest
    topics = list(manifest["topics"])
    existing = await target_offsets(bootstrap, topics)
    for topic, ends in existing.items():
        if ends is not None and len(ends) != manifest["topics"][topic]["partitions"]:
            raise TargetMismatch(f"{topic} has {len(ends)} partitions at {bootstrap}, the backup "
                                 f"{manifest['topics'][topic]['partitions']}: records would land in other partitions")
    occupied = {topic: ends for topic, ends in existing.items() if ends and any(o > 0 for o in ends.values())}
    if occupied and not allow_non_empty:
        raise TargetNotEmpty(occupied)
    created = await _create_topics(bootstrap, manifest, existing)
    before = await target_offsets(bootstrap, topics)

    progress = Progress(records_total=manifest["records"])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                                max_batch_size=PRODUCE_BATCH_BYTES, max_request_size=8 * 1024 * 1024,
                                request_timeout_ms=60000, **kafka_security.client_options())
    produced: dict[tuple[str, int], int] = {}
    try:
        await producer.start()
        in_flight: deque[asyncio.Future] = deque()

        async def send(batch, topic: str, partition: int) -> None:
            batch.close()
            in_flight.append(await producer.send_batch(batch, topic, partition=partition))
            while len(in_flight) > IN_FLIGHT_BATCHES:
                await in_flight.popleft()
            if time.monotonic() - shown[0] >= 0.5:
                shown[0] = time.monotonic()
                on_progress(progress)

        # Every partition at once, a slice of each in turn: the producer's requests then carry
        # batches of many partitions (one request in flight per broker), and each partition's
        # batches still go out in order.
        streams = {}
        for entry in manifest["files"]:  # a partition's files are listed in order
            streams.setdefault((entry["topic"], entry["partition"]), []).append(entry)
        readers = {tp: _partition_records(directory, entries) for tp, entries in streams.items()}
        batches = {tp: producer.create_batch() for tp in readers}
        shown = [0.0]
        while readers:
            for (topic, partition), records in list(readers.items()):
                batch = batches[(topic, partition)]
                for record in islice(records, INTERLEAVE_RECORDS):
                    headers = [(h["key"], h["value"]) for h in record["headers"]]
                    while batch.append(key=record["key"], value=record["value"], timestamp=record["timestamp"],
                                       headers=headers) is None:
                        await send(batch, topic, partition)
                        batch = producer.create_batch()
                    produced[(topic, partition)] = produced.get((topic, partition), 0) + 1
                    progress.records += 1
                    progress.bytes += len(record["value"] or b"") + len(record["key"] or b"")
                batches[(topic, partition)] = batch
                if records.done:
                    if batch.record_count():
                        await send(batch, topic, partition)
                    del readers[(topic, partition)]
        await asyncio.gather(*in_flight)
        on_progress(progress)
    finally:
        await producer.stop()
    after = await target_offsets(bootstrap, topics)
    summary_topics = {}
    for topic in topics:
        parts = []
        for p in range(manifest["topics"][topic]["partitions"]):
            start, end = (before[topic] or {}).get(p, 0), (after[topic] or {}).get(p, 0)
            parts.append({"partition": p, "records": produced.get((topic, p), 0), "first_offset": start,
                          "end_offset": end})
        summary_topics[topic] = {"records": sum(x["records"] for x in parts), "partitions": parts}
    return {"records": progress.records, "value_bytes": progress.bytes, "seconds": round(progress.seconds, 3),
            "topics_created": created, "topics": summary_topics}
