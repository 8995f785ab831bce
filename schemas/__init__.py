"""Avro schemas of the events, one .avsc per event type and version.

Files are named `<snake_event_type>.v<version>.avsc`. The registry maps
(event_type, version) to the parsed schema and to its fingerprint (CRC-64-AVRO of
the parsing canonical form), which travels in a Kafka header so a reader can always
find the writer's schema.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

SCHEMA_DIR = Path(__file__).parent
_FILE = re.compile(r"^(?P<name>[a-z_]+)\.v(?P<version>\d+)\.avsc$")


@dataclass(frozen=True)
class SchemaVersion:
    event_type: str
    version: int
    raw: dict
    parsed: dict
    fingerprint: str


def _event_type(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


@cache
def registry() -> dict[tuple[str, int], SchemaVersion]:
    found = {}
    for path in sorted(SCHEMA_DIR.glob("*.avsc")):
        match = _FILE.match(path.name)
        if not match:
            raise ValueError(f"schema file {path.name} is not named <event_type>.v<N>.avsc")
        raw = json.loads(path.read_text())
        parsed = parse_schema(raw, _write_hint=False)
        event_type = _event_type(match["name"])
        if raw["name"] != event_type:
            raise ValueError(f"{path.name} declares record {raw['name']}, expected {event_type}")
        fp = fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO")
        found[(event_type, int(match["version"]))] = SchemaVersion(event_type, int(match["version"]), raw, parsed, fp)
    return found


@cache
def by_fingerprint() -> dict[str, SchemaVersion]:
    return {s.fingerprint: s for s in registry().values()}


@cache
def versions(event_type: str) -> tuple[SchemaVersion, ...]:
    """Every schema version of an event type, oldest first."""
    found = tuple(sorted((s for (t, _), s in registry().items() if t == event_type), key=lambda s: s.version))
    if not found:
        raise KeyError(f"no schema for event type {event_type}")
    return found


def latest(event_type: str) -> SchemaVersion:
    return versions(event_type)[-1]
