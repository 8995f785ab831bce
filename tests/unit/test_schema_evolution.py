"""Schema evolution: old events must stay readable forever.

- every newer schema version can read every older one (backward transitive),
  checked with the avro package's own compatibility checker;
- code and schemas cannot drift: every event class has a schema and back, and its
  fields match the latest schema's fields (names, types, optionality, defaults);
- every event type round-trips through the codec;
- the committed golden files (tests/golden/, written by make_golden.py) decode
  with today's codec into the values recorded next to them.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import typing
from datetime import datetime
from pathlib import Path

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

import schemas
from adapters import kafka_codec
from domain.events import EVENT_TYPES, Event
from tests.golden.make_golden import jsonable
from tests.golden.samples import SAMPLES

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"
ENVELOPE = ["event_id", "event_type", "schema_version", "occurred_at", "user_id", "actor",
            "correlation_id", "causation_id"]
ENVELOPE_DOMAIN = {f.name for f in dataclasses.fields(Event)}


def compatibility(reader: dict, writer: dict):
    """The avro checker's verdict: can data written with `writer` be read with `reader`?"""
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(json.dumps(reader)), avro.schema.parse(json.dumps(writer)))
    return result.compatibility, result.messages


# --- compatibility ---------------------------------------------------------------------


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_version_reads_every_older_one(event_type):
    versions = schemas.versions(event_type)
    assert [s.version for s in versions] == list(range(1, len(versions) + 1)), "versions are 1..N"
    for i, reader in enumerate(versions):
        for writer in versions[:i]:
            verdict, messages = compatibility(reader.raw, writer.raw)
            assert verdict == SchemaCompatibilityType.compatible, (
                f"{event_type} v{reader.version} cannot read v{writer.version}: {messages}")


def _field_without_default(raw):
    raw["fields"].append({"name": "mood", "type": "string"})


def _changed_type(raw):
    next(f for f in raw["fields"] if f["name"] == "text")["type"] = "int"


def _dropped_default(raw):
    del next(f for f in raw["fields"] if f["name"] == "entities")["default"]


@pytest.mark.parametrize("change", [_field_without_default, _changed_type, _dropped_default])
def test_the_check_catches_an_incompatible_v3(change):
    v3 = copy.deepcopy(schemas.latest("MemoryCreated").raw)
    change(v3)
    verdict, messages = compatibility(v3, schemas.versions("MemoryCreated")[0].raw)
    assert verdict == SchemaCompatibilityType.incompatible, "the checker let an incompatible change through"
    assert messages


# --- code and schemas in step ----------------------------------------------------------


def test_every_event_class_has_a_schema_and_every_schema_a_class():
    assert set(EVENT_TYPES) == {event_type for event_type, _ in schemas.registry()}
    for name, cls in EVENT_TYPES.items():
        assert cls.event_type == name
        assert cls.schema_version == schemas.latest(name).version, f"{name}.schema_version is not the latest"


def _optional(hint) -> tuple[bool, typing.Any]:
    args = typing.get_args(hint)
    if type(None) in args:
        return True, next(a for a in args if a is not type(None))
    return False, hint


def _avro_type_matches(hint, avro_type) -> bool:
    if hint is dict or typing.get_origin(hint) is dict:
        return avro_type == "string"  # a JSON object
    if typing.get_origin(hint) is tuple:
        return (isinstance(avro_type, dict) and avro_type["type"] == "array"
                and _avro_type_matches(typing.get_args(hint)[0], avro_type["items"]))
    if dataclasses.is_dataclass(hint):
        return (isinstance(avro_type, dict) and avro_type["type"] == "record"
                and avro_type["name"] == hint.__name__ and _record_matches(hint, avro_type["fields"]) == [])
    if hint is datetime:
        return avro_type == {"type": "long", "logicalType": "timestamp-micros"}
    if hint is str:
        return avro_type in ("string", {"type": "string", "logicalType": "uuid"})
    return avro_type == {float: "float", int: "long", bool: "boolean"}.get(hint, object())


def _avro_default(f: dataclasses.Field):
    value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if isinstance(value, dict):
        return json.dumps(value)
    return list(value) if isinstance(value, tuple) else value


def _record_matches(cls, avro_fields) -> list[str]:
    """What differs between a dataclass and an Avro record's fields (empty: they match)."""
    hints = typing.get_type_hints(cls)
    by_name = {f["name"]: f for f in avro_fields}
    problems, seen = [], {"event_type", "schema_version"} & set(by_name)
    for f in dataclasses.fields(cls):
        optional, hint = _optional(hints[f.name])
        name = f"{f.name}_json" if hint is dict or typing.get_origin(hint) is dict else f.name
        avro_field = by_name.get(name)
        if avro_field is None:
            problems.append(f"{f.name}: no Avro field {name}")
            continue
        seen.add(name)
        avro_type = avro_field["type"]
        if optional:
            if not (isinstance(avro_type, list) and avro_type[0] == "null" and len(avro_type) == 2
                    and "default" in avro_field and avro_field["default"] is None):
                problems.append(f"{f.name}: optional in code, not a [null, X] union with default null")
                continue
            avro_type = avro_type[1]
        if not _avro_type_matches(hint, avro_type):
            problems.append(f"{f.name}: {hints[f.name]} does not match {avro_type}")
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        if f.name not in ENVELOPE_DOMAIN and has_default != ("default" in avro_field):
            problems.append(f"{f.name}: default in code {has_default}, in schema {'default' in avro_field}")
        elif f.name not in ENVELOPE_DOMAIN and has_default and avro_field["default"] != _avro_default(f):
            problems.append(f"{f.name}: default {_avro_default(f)!r} in code, {avro_field['default']!r} in schema")
    problems += [f"{name}: in the schema, not in the code" for name in by_name if name not in seen]
    return problems


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_dataclass_matches_latest_schema(event_type):
    raw = schemas.latest(event_type).raw
    assert raw["namespace"] == "dev.recallstack.events" and raw.get("doc")
    assert [f["name"] for f in raw["fields"][:len(ENVELOPE)]] == ENVELOPE
    assert _record_matches(EVENT_TYPES[event_type], raw["fields"]) == []


def test_drift_is_caught():
    raw = copy.deepcopy(schemas.latest("MemoryCreated").raw)
    raw["fields"] = [f for f in raw["fields"] if f["name"] != "importance"] + [{"name": "mood", "type": "string"}]
    assert _record_matches(EVENT_TYPES["MemoryCreated"], raw["fields"]) == [
        "importance: no Avro field importance", "mood: in the schema, not in the code"]


# --- round trip ------------------------------------------------------------------------


def _minimal(event: Event) -> Event:
    """The same event with every defaulted field (beyond the envelope) at its default."""
    defaults = {f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                for f in dataclasses.fields(event)
                if f.name not in ENVELOPE_DOMAIN
                and (f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING)}
    return dataclasses.replace(event, **defaults)


def test_there_is_a_sample_of_every_event_type():
    assert set(SAMPLES) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
@pytest.mark.parametrize("shape", ["full", "minimal"])
def test_round_trip(event_type, shape):
    event = SAMPLES[event_type] if shape == "full" else _minimal(SAMPLES[event_type])
    value, headers = kafka_codec.encode(event)
    assert dict(headers)[kafka_codec.TYPE_HEADER] == event_type.encode()
    assert dict(headers)[kafka_codec.SCHEMA_HEADER] == schemas.latest(event_type).fingerprint.encode()
    assert kafka_codec.decode(value, headers) == event


# --- golden files ----------------------------------------------------------------------

GOLDEN = sorted(GOLDEN_DIR.glob("*.json"))


def _decode_golden(path: Path):
    expected = json.loads(path.read_text())
    value = path.with_name(path.name.removesuffix(".json") + ".avro").read_bytes()
    headers = [(kafka_codec.SCHEMA_HEADER, expected["fingerprint"].encode())]
    return expected, kafka_codec.decode(value, headers)


def test_every_schema_version_has_a_golden_file():
    covered = {json.loads(p.read_text())["fingerprint"] for p in GOLDEN}
    missing = [f"{s.event_type} v{s.version}" for s in schemas.registry().values() if s.fingerprint not in covered]
    assert not missing, f"no golden file for {missing}: run python tests/golden/make_golden.py"


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_golden_file_decodes_with_todays_codec(path):
    expected, event = _decode_golden(path)
    schema = schemas.registry()[(expected["event_type"], expected["schema_version"])]
    assert schema.fingerprint == expected["fingerprint"], "a committed schema file was changed"
    assert event.event_type == expected["event_type"]
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if f.name in expected["fields"]:
            assert jsonable(value) == expected["fields"][f.name], f.name
        else:  # added after this version was written: upcast to its default
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            assert value == default, f.name
    for f in ("occurred_at", "happened_at", "expires_at"):
        value = getattr(event, f, None)
        assert value is None or value.utcoffset().total_seconds() == 0


def test_memory_created_v1_golden_upcasts_to_the_latest():
    expected, event = _decode_golden(GOLDEN_DIR / "memory_created.v1.json")
    assert expected["schema_version"] == 1 and "entities" not in expected["fields"]
    assert event.entities == () and event.relations == () and event.context is None and event.expires_at is None
    assert event.text == expected["fields"]["text"] and event.schema_version == 4

    _, v2 = _decode_golden(GOLDEN_DIR / "memory_created.v2.json")
    assert v2.entities and v2.relations and v2.context is None
    _, v3 = _decode_golden(GOLDEN_DIR / "memory_created.v3.json")
    assert v3.context == "Bob: where does Alice work these days?" and v3.expires_at is None
    _, v4 = _decode_golden(GOLDEN_DIR / "memory_created.v4.json")
    assert v4.expires_at is not None and v4.expires_at.tzinfo is not None


def test_memory_updated_v1_golden_leaves_the_expiry_alone():
    _, v1 = _decode_golden(GOLDEN_DIR / "memory_updated.v1.json")
    assert v1.expires_at is None and v1.expiry_cleared is False and v1.schema_version == 2
    _, v2 = _decode_golden(GOLDEN_DIR / "memory_updated.v2.json")
    assert v2.expires_at is not None and v2.expiry_cleared is False
