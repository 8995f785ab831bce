"""A mem0 export as a recallstack export file (pure: bytes in, bytes out), for `recallstack import
--from-mem0 FILE`: the import path then checks and writes it like any export (cli/memory_file.py).

mem0's client has no one export format: users save what `MemoryClient.get_all` returns (a page,
`{count, next, previous, results: [...]}`, or in older versions a list), one page per line when
they page through, or what its export API returns (`{memories: [...]}`). Every one of those is
read; each memory is `{id, memory, user_id, agent_id, run_id, app_id, metadata, categories,
created_at, updated_at, ...}`. mem0's platform-only fields (hash, immutable, expiration_date,
structured_attributes, score ...) are dropped; an id that is not a UUID gets a stable one made
from it (the original is kept in metadata.imported_from.id like any import's).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from application.mem0_shapes import Mem0ShapeError, expires_at_of
from cli.memory_file import FORMAT, VERSION, FormatError, Problem

# What a mem0 memory brings into a recallstack export line; the rest of its fields are dropped.
_CARRIED = ("metadata", "categories", "agent_id", "run_id", "app_id", "created_at", "updated_at")
_MEM0_IDS = uuid.UUID("5f0c6a3e-9d8b-4c61-a7e2-3b1d0e4f8a92")  # the namespace of the ids made for non-UUID ones


def _memories_of(document, line: int, problems: list[Problem]) -> list[tuple[int, object]]:
    if isinstance(document, list):
        return [(line, item) for item in document]
    if isinstance(document, dict):
        for key in ("results", "memories"):
            if isinstance(document.get(key), list):
                return [(line, item) for item in document[key]]
        if "memory" in document:
            return [(line, document)]
    problems.append(Problem(line, None, "expected mem0's get_all answer ({results: [...]}), a list of memories, "
                                        "its export ({memories: [...]}) or one memory per line"))
    return []


def _documents(data: bytes, problems: list[Problem]) -> list[tuple[int, object]]:
    """(line, JSON value): the whole file as one document, else one per non-blank line."""
    try:
        return [(1, json.loads(data))]
    except (ValueError, UnicodeDecodeError):
        pass
    found = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if raw.strip():
            try:
                found.append((number, json.loads(raw)))
            except (ValueError, UnicodeDecodeError) as exc:
                problems.append(Problem(number, None, f"not JSON: {exc}"))
    return found


def _line(item, number: int, problems: list[Problem]) -> dict | None:
    if not isinstance(item, dict):
        problems.append(Problem(number, None, f"a memory is an object, got {type(item).__name__}"))
        return None
    if not isinstance(item.get("memory"), str):
        problems.append(Problem(number, "memory", "missing: a mem0 memory has its text in `memory`"))
        return None
    raw_id = str(item.get("id") or item["memory"])
    try:
        memory_id = str(uuid.UUID(raw_id))
    except ValueError:
        memory_id = str(uuid.uuid5(_MEM0_IDS, raw_id))
    line = {"id": memory_id, "memory": item["memory"], **{k: item.get(k) for k in _CARRIED}, "importance": None,
            "state": "active", "occurred_at": item.get("created_at")}
    if item.get("expiration_date") is not None:  # mem0's date is inclusive, as on its add route
        try:
            line["expires_at"] = expires_at_of(item["expiration_date"])
        except Mem0ShapeError as exc:
            problems.append(Problem(number, "expiration_date", str(exc)))
            return None
    if line["metadata"] is None:
        line["metadata"] = {}
    if line["categories"] is None:
        line["categories"] = []
    return line


def export_file(data: bytes, now: datetime | None = None) -> bytes:
    """The recallstack export file of a mem0 export; FormatError naming the line when it is not one."""
    problems: list[Problem] = []
    lines = []
    for number, document in _documents(data, problems):
        for line_number, item in _memories_of(document, number, problems):
            line = _line(item, line_number, problems)
            if line is not None:
                lines.append(line)
    if not problems and not lines:
        problems.append(Problem(1, None, "no memories in the file"))
    if problems:
        raise FormatError(problems[:20], len(problems))
    exported_at = (now or datetime.now(timezone.utc)).isoformat()
    header = {"format": FORMAT, "version": VERSION, "user_id": "mem0", "exported_at": exported_at,
              "embedding_model": None, "dim": None, "count": len(lines)}
    return "".join(json.dumps(doc, ensure_ascii=False) + "\n" for doc in [header, *lines]).encode()
