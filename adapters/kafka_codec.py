"""Avro encoding of domain events for Kafka.

The value is schemaless Avro (fastavro); the writer schema's fingerprint travels in
the `rs-schema` header, so a reader finds the exact writer schema and resolves it
into the current (latest) reader schema: older versions are upcast on read.
"""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

import schemas
from domain.events import EVENT_TYPES, Event

SCHEMA_HEADER = "rs-schema"
TYPE_HEADER = "rs-event-type"

# Domain field name -> Avro field name, where they differ (JSON objects travel as strings).
_JSON_FIELDS = {"metadata": "metadata_json"}


class UnknownSchema(ValueError):
    pass


def to_record(event: Event) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_type": event.event_type,
        "schema_version": event.schema_version,
    }
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if f.name in _JSON_FIELDS:
            record[_JSON_FIELDS[f.name]] = json.dumps(value, separators=(",", ":"), sort_keys=True)
        elif isinstance(value, tuple):
            record[f.name] = list(value)
        else:
            record[f.name] = value
    return record


def from_record(record: dict[str, Any]) -> Event:
    cls = EVENT_TYPES[record["event_type"]]
    kwargs = {}
    for f in dataclasses.fields(cls):
        avro_name = _JSON_FIELDS.get(f.name, f.name)
        if avro_name not in record:
            continue
        value = record[avro_name]
        if f.name in _JSON_FIELDS:
            value = json.loads(value)
        elif isinstance(value, list):
            value = tuple(value)
        elif f.name in ("event_id", "memory_id") and value is not None:
            value = str(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def encode(event: Event) -> tuple[bytes, list[tuple[str, bytes]]]:
    schema = schemas.latest(event.event_type)
    buf = io.BytesIO()
    schemaless_writer(buf, schema.parsed, to_record(event))
    headers = [(SCHEMA_HEADER, schema.fingerprint.encode()), (TYPE_HEADER, event.event_type.encode())]
    return buf.getvalue(), headers


def decode(value: bytes, headers: "list[tuple[str, bytes]] | tuple") -> Event:
    found = dict(headers or ())
    fp = found.get(SCHEMA_HEADER)
    if fp is None:
        raise UnknownSchema(f"message has no {SCHEMA_HEADER} header")
    writer = schemas.by_fingerprint().get(fp.decode())
    if writer is None:
        raise UnknownSchema(f"no schema with fingerprint {fp.decode()}")
    reader = schemas.latest(writer.event_type)
    record = schemaless_reader(io.BytesIO(value), writer.parsed, reader.parsed)
    return from_record(record)
