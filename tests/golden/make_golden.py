"""Write the golden files: the exact Avro bytes of every event type at every schema
version, so tests can prove that events written today decode forever.

    python tests/golden/make_golden.py            # write the missing files only
    python tests/golden/make_golden.py --force    # also overwrite existing ones (almost never right)

For each schema `<snake>.v<N>.avsc` it writes `<snake>.v<N>.avro` (schemaless Avro,
written with that exact version from tests/golden/samples.py) and `<snake>.v<N>.json`
(the writer fingerprint and the field values those bytes decode to today). Run by
hand only, once per new schema version; commit both files and never edit them.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from dataclasses import asdict, fields, is_dataclass
from datetime import datetime
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(GOLDEN_DIR.parents[1]))  # the repository root, when run as a script

from fastavro import schemaless_writer

import schemas
from adapters import kafka_codec
from tests.golden.samples import SAMPLES


def jsonable(value):
    """A decoded field value as JSON: datetimes as ISO 8601, tuples as lists, records as objects."""
    if isinstance(value, datetime):
        return value.isoformat()
    if is_dataclass(value):
        return jsonable(asdict(value))
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def write(schema: schemas.SchemaVersion, force: bool) -> str:
    stem = f"{_snake(schema.event_type)}.v{schema.version}"
    avro_path, json_path = GOLDEN_DIR / f"{stem}.avro", GOLDEN_DIR / f"{stem}.json"
    if (avro_path.exists() or json_path.exists()) and not force:
        return f"kept    {avro_path.name} (exists; --force to overwrite)"
    record = kafka_codec.to_record(SAMPLES[schema.event_type])
    record["schema_version"] = schema.version  # fields unknown to this version are left out by the writer
    buf = io.BytesIO()
    schemaless_writer(buf, schema.parsed, record)
    decoded = kafka_codec.decode(buf.getvalue(), [(kafka_codec.SCHEMA_HEADER, schema.fingerprint.encode())])
    written = {f["name"] for f in schema.raw["fields"]}
    expected = {f.name: jsonable(getattr(decoded, f.name)) for f in fields(decoded)
                if f.name in written or f"{f.name}_json" in written}
    avro_path.write_bytes(buf.getvalue())
    json_path.write_text(json.dumps({
        "event_type": schema.event_type, "schema_version": schema.version, "fingerprint": schema.fingerprint,
        "fields": expected,
    }, indent=2, ensure_ascii=False) + "\n")
    return f"wrote   {avro_path.name} ({len(buf.getvalue())} bytes)"


def _snake(event_type: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in event_type).lstrip("_")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="overwrite existing golden files")
    args = parser.parse_args()
    for key in sorted(schemas.registry()):
        print(write(schemas.registry()[key], args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
