"""Avro encoding of domain events for Kafka.

The value is schemaless Avro (fastavro); the writer schema's fingerprint travels in
the `rs-schema` header, so a reader finds the exact writer schema and resolves it
into the current (latest) reader schema: older versions are upcast on read.

Domain <-> Avro mapping, derived from the dataclasses' type hints (no per-event code):
tuples are arrays, nested dataclasses are records, dict fields travel as JSON
strings named `<name>_json`, datetimes are timestamp-micros (a naive datetime is
taken as UTC; decoded datetimes are always timezone-aware UTC). Fields whose schema
says logicalType uuid are checked on encode, so a malformed id is refused here
rather than written as an event nobody can read back.

Sealing (crypto-shredding, docs/security.md): given the user's data key, `encode` seals
the Avro bytes (domain/sealing.py) and adds the `rs-seal` header; the schema and type
headers stay in the clear so routing and schema resolution work as before. `decode`
takes a key lookup for sealed values and raises `Shredded` when the key was destroyed.
A value without `rs-seal` (every event written before sealing) decodes as it always did.
"""

from __future__ import annotations

import dataclasses
import io
import json
import types
import typing
import uuid
from datetime import datetime, timezone
from functools import cache
from typing import Any, Callable

from fastavro import schemaless_reader, schemaless_writer

import schemas
from domain import sealing
from domain.events import EVENT_TYPES, Event
from domain.sealing import DataKey

SCHEMA_HEADER = "rs-schema"
TYPE_HEADER = "rs-event-type"
SEAL_HEADER = "rs-seal"

# (user_id, key version) -> the data key, or None when it was destroyed (the user erased).
KeyLookup = Callable[[str, int], "DataKey | None"]


class UnknownSchema(ValueError):
    pass


class SealedWithoutKeys(ValueError):
    """A sealed value met a decoder that was given no key lookup (a wiring mistake)."""


class Shredded(LookupError):
    """The event was sealed with a data key that was destroyed: its user was erased. Not an
    error to dead-letter: readers skip it (the log replays without that user's content)."""

    def __init__(self, user_id: str, version: int, event_type: str):
        super().__init__(f"{event_type} of an erased user (data key v{version} destroyed)")
        self.user_id, self.version, self.event_type = user_id, version, event_type


# --- type-hint driven conversion -----------------------------------------------------


def _without_none(hint: Any) -> Any:
    """`X | None` -> X; anything else unchanged."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _is_dict(hint: Any) -> bool:
    return hint is dict or typing.get_origin(hint) is dict


@cache
def _fields(cls: type) -> tuple[tuple[str, str, Any], ...]:
    """(domain name, Avro name, type hint without None) of each field of a dataclass."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = _without_none(hints[f.name])
        out.append((f.name, f"{f.name}_json" if _is_dict(hint) else f.name, hint))
    return tuple(out)


def _to_avro(value: Any, hint: Any) -> Any:
    if value is None:
        return None
    if _is_dict(hint):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        if item in (float, int, str, bool):
            return list(value)
        return [_to_avro(v, item) for v in value]
    if dataclasses.is_dataclass(hint):
        return {avro: _to_avro(getattr(value, name), h) for name, avro, h in _fields(hint)}
    if hint is datetime and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)  # fastavro would take a naive one as local time
    return value


def _from_avro(value: Any, hint: Any) -> Any:
    return None if value is None else _decoder(hint)(value)


@cache
def _decoder(hint: Any) -> Callable[[Any], Any]:
    """The conversion for one type hint, worked out once (decoding runs per event in replays)."""
    if _is_dict(hint):
        return json.loads
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        if item in (float, int, bool):  # not str: a uuid logical type arrives as uuid.UUID
            return tuple  # an embedding: 384 floats need no per-item conversion
        convert = _decoder(item)
        return lambda value: tuple(None if v is None else convert(v) for v in value)
    if dataclasses.is_dataclass(hint):
        return lambda value: hint(**_kwargs(hint, value))
    if hint is datetime:
        return lambda value: value.replace(tzinfo=timezone.utc) if value.tzinfo is None \
            else value.astimezone(timezone.utc)
    if hint is str:
        return lambda value: str(value) if isinstance(value, uuid.UUID) else value
    return lambda value: value


def _kwargs(cls: type, record: dict[str, Any]) -> dict[str, Any]:
    # A field the record lacks (unknown to the reader schema) keeps its dataclass default.
    return {name: _from_avro(record[avro], hint) for name, avro, hint in _fields(cls) if avro in record}


def _check_uuids(schema: Any, value: Any, path: str) -> None:
    """Refuse a non-UUID where the schema says logicalType uuid (fastavro writes it but cannot read it back)."""
    if value is None:
        return
    if isinstance(schema, list):  # our unions are ["null", X]
        schema = next(s for s in schema if s != "null")
    if not isinstance(schema, dict):
        return
    if schema.get("logicalType") == "uuid":
        try:
            uuid.UUID(str(value))
        except ValueError:
            raise ValueError(f"{path} must be a UUID, got {value!r}") from None
    elif schema["type"] == "record":
        for f in schema["fields"]:
            _check_uuids(f["type"], value.get(f["name"]), f"{path}.{f['name']}")
    elif schema["type"] == "array" and isinstance(schema["items"], dict):
        for i, item in enumerate(value):
            _check_uuids(schema["items"], item, f"{path}[{i}]")


# --- public API ------------------------------------------------------------------------


def to_record(event: Event) -> dict[str, Any]:
    record: dict[str, Any] = {"event_type": event.event_type, "schema_version": event.schema_version}
    record.update(_to_avro(event, type(event)))
    return record


def from_record(record: dict[str, Any]) -> Event:
    cls = EVENT_TYPES[record["event_type"]]
    return cls(**_kwargs(cls, record))


def encode(event: Event, key: DataKey | None = None) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Avro value and headers; sealed with `key` (the event user's data key) when given and
    the event type is one that is sealed."""
    schema = schemas.latest(event.event_type)
    record = to_record(event)
    _check_uuids(schema.parsed, record, event.event_type)
    buf = io.BytesIO()
    schemaless_writer(buf, schema.parsed, record)
    value = buf.getvalue()
    headers = [(SCHEMA_HEADER, schema.fingerprint.encode()), (TYPE_HEADER, event.event_type.encode())]
    if key is not None and sealing.is_sealed_type(event.event_type):
        if key.user_id != event.user_id:
            raise ValueError(f"the data key of {key.user_id!r} cannot seal an event of {event.user_id!r}")
        aad = sealing.associated_data(event.user_id, event.event_type, schema.fingerprint, key.version)
        value = sealing.seal(key.material, value, aad)
        headers.append((SEAL_HEADER, sealing.seal_header(key)))
    return value, headers


def seal_ref(headers: "list[tuple[str, bytes]] | tuple") -> tuple[str, int] | None:
    """(user_id, key version) a record was sealed with, or None for an unsealed record."""
    for name, raw in headers or ():
        if name == SEAL_HEADER:
            return sealing.parse_seal_header(raw)
    return None


def decode(value: bytes, headers: "list[tuple[str, bytes]] | tuple", keys: KeyLookup | None = None) -> Event:
    """The event; raises Shredded for a sealed event whose key was destroyed, SealBroken
    when a sealed value does not authenticate, UnknownSchema for an unknown writer schema."""
    found = dict(headers or ())
    fp = found.get(SCHEMA_HEADER)
    if fp is None:
        raise UnknownSchema(f"message has no {SCHEMA_HEADER} header")
    writer = schemas.by_fingerprint().get(fp.decode())
    if writer is None:
        raise UnknownSchema(f"no schema with fingerprint {fp.decode()}")
    if SEAL_HEADER in found:
        user_id, version = sealing.parse_seal_header(found[SEAL_HEADER])
        if keys is None:
            raise SealedWithoutKeys(f"{writer.event_type} is sealed and this decoder has no key store")
        key = keys(user_id, version)
        if key is None:
            raise Shredded(user_id, version, writer.event_type)
        value = sealing.unseal(key.material, value,
                               sealing.associated_data(user_id, writer.event_type, writer.fingerprint, version))
    reader = schemas.latest(writer.event_type)
    # Resolution against the reader schema only when it differs (it costs a replay dearly).
    record = schemaless_reader(io.BytesIO(value), writer.parsed, None if reader is writer else reader.parsed)
    return from_record(record)
