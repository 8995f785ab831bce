"""The export file of `recallstack export` / `import`: one user's memories as JSON Lines (pure: no I/O).

Line 1 is the header, every other line one memory:

    {"format": "recallstack.memories", "version": 2, "user_id": "alice", "exported_at": "2024-06-01T12:00:00+00:00",
     "embedding_model": "sentence-transformers/all-MiniLM-L6-v2", "dim": 384, "count": 2}
    {"id": "…", "memory": "Prefers dark mode", "metadata": {}, "categories": [], "importance": 0.5,
     "agent_id": null, "run_id": null, "app_id": null, "state": "active", "created_at": "…",
     "updated_at": "…", "occurred_at": "…", "expires_at": null}
    {... "embedding": [0.01, ...], "embedding_model": "sentence-transformers/all-MiniLM-L6-v2"}   (--include-vectors)

`read_file` checks the whole file before anything is imported: the header, every line (the
fields and their types, and the add body each becomes against the command API's own limits),
duplicate ids and the header's count. A problem names its line (1 = the header) and field.
Unknown fields are refused: a version-2 file has exactly these fields, a version-1 file (read
as well) the same without `expires_at`. A memory's expiry travels with it; one that has passed
by the time of the import is not imported (`expired`), as it would be invisible at once.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from domain.expiry import is_expired
from domain.identifiers import ID_PATTERN

FORMAT = "recallstack.memories"
VERSION = 2
READS = (1, 2)  # version 1 had no expires_at
HEADER_FIELDS = ("format", "version", "user_id", "exported_at", "embedding_model", "dim", "count")
MEMORY_FIELDS = ("id", "memory", "metadata", "categories", "importance", "agent_id", "run_id", "app_id", "state",
                 "created_at", "updated_at", "occurred_at", "expires_at")
FIELDS_SINCE = {"expires_at": 2}
VECTOR_FIELDS = ("embedding", "embedding_model")
STATES = ("active", "archived", "forgotten")
MAX_PROBLEMS = 20  # reported at most; the rest are counted


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based; 1 is the header
    field: str | None  # the field at fault (a dotted path), None for the line as a whole
    message: str

    def __str__(self) -> str:
        return f"line {self.line}" + (f", field {self.field}" if self.field else "") + f": {self.message}"


class FormatError(ValueError):
    """The file is not a valid export; `problems` lists the first ones (line, field, message)."""

    def __init__(self, problems: list[Problem], total: int | None = None):
        self.problems = problems
        self.total = total if total is not None else len(problems)
        message = "; ".join(str(p) for p in problems[:3])
        if self.total > 3:
            message += f" (and {self.total - 3} more problems)"
        super().__init__(message)


@dataclass(frozen=True)
class Header:
    user_id: str
    exported_at: str
    embedding_model: str | None
    dim: int | None
    count: int
    version: int = VERSION

    def as_dict(self) -> dict:
        return {"format": FORMAT, "version": self.version, "user_id": self.user_id, "exported_at": self.exported_at,
                "embedding_model": self.embedding_model, "dim": self.dim, "count": self.count}


@dataclass(frozen=True)
class Entry:
    """One memory of the file, checked."""
    line: int
    doc: dict = field(repr=False)

    @property
    def id(self) -> str:
        return self.doc["id"]

    @property
    def embedding(self) -> list[float] | None:
        return self.doc.get("embedding")

    @property
    def embedding_model(self) -> str | None:
        return self.doc.get("embedding_model")

    def expired(self, now: datetime) -> bool:
        """Its expires_at has passed at `now` (an aware time; a naive expires_at is UTC)."""
        expires_at = self.doc.get("expires_at")
        return is_expired(datetime.fromisoformat(expires_at) if expires_at else None, now)


@dataclass(frozen=True)
class MemoryFile:
    header: Header
    entries: list[Entry]
    digest: str  # sha256 of the file's bytes: what import's Idempotency-Keys derive from


# ---- writing -----------------------------------------------------------------------------

def header_line(header: Header) -> str:
    return json.dumps(header.as_dict(), ensure_ascii=False) + "\n"


def memory_line(memory: dict, include_vectors: bool) -> str:
    """The file's line of a memory as GET /v1/memories shows it."""
    doc = {name: memory.get(name) for name in MEMORY_FIELDS}
    if include_vectors:
        doc["embedding"] = memory["embedding"]
        doc["embedding_model"] = memory["embedding_model"]
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"


# ---- reading -----------------------------------------------------------------------------

def read_file(data: bytes, user_id: str) -> MemoryFile:
    """The checked file, or FormatError naming every problem (line and field) found.
    `user_id` is the user the memories will belong to: each line's add body is checked for
    that user against the command API's limits, so nothing is sent unless all would pass."""
    problems: list[Problem] = []
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line
    if not lines:
        raise FormatError([Problem(1, None, "the file is empty: expected the header line")])
    header = _header(lines[0], problems)
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines[1:], start=2):
        entry = _entry(number, raw, header, user_id, problems)
        if entry is None:
            continue
        if entry.id in seen:
            problems.append(Problem(number, "id", f"duplicates the memory on line {seen[entry.id]}"))
            continue
        seen[entry.id] = number
        entries.append(entry)
    if header is not None and header.count != len(lines) - 1:
        problems.append(Problem(1, "count", f"the header says {header.count} memories but the file has "
                                            f"{len(lines) - 1} memory lines (truncated or edited?)"))
    if problems:
        problems.sort(key=lambda p: p.line)
        raise FormatError(problems[:MAX_PROBLEMS], len(problems))
    return MemoryFile(header, entries, hashlib.sha256(data).hexdigest())


def _object(number: int, raw: bytes, problems: list[Problem]) -> dict | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(number, None, f"not UTF-8 (byte {exc.start})"))
        return None
    if not text.strip():
        problems.append(Problem(number, None, "empty line"))
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(Problem(number, None, f"not valid JSON: {exc.msg} at column {exc.colno}"))
        return None
    if not isinstance(value, dict):
        problems.append(Problem(number, None, f"expected a JSON object, got {_kind(value)}"))
        return None
    return value


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _iso(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _header(raw: bytes, problems: list[Problem]) -> Header | None:
    doc = _object(1, raw, problems)
    if doc is None:
        return None
    before = len(problems)

    def bad(name: str, message: str) -> None:
        problems.append(Problem(1, name, message))

    if doc.get("format") != FORMAT:
        bad("format", f"expected {FORMAT!r}, got {doc.get('format')!r}: not a recallstack export")
        return None
    version = doc.get("version")
    if type(version) is not int or version not in READS:
        bad("version", f"this recallstack reads versions {', '.join(map(str, READS))}, the file is version {version!r}")
        return None
    for name in sorted(set(doc) - set(HEADER_FIELDS)):
        bad(name, "unknown field")
    for name in HEADER_FIELDS:
        if name not in doc:
            bad(name, "missing")
    user = doc.get("user_id")
    if "user_id" in doc and not (isinstance(user, str) and re.match(ID_PATTERN, user)):
        bad("user_id", f"not a user id: {user!r}")
    if "exported_at" in doc and not _iso(doc["exported_at"]):
        bad("exported_at", f"not an ISO 8601 time: {doc['exported_at']!r}")
    model, dim, count = doc.get("embedding_model"), doc.get("dim"), doc.get("count")
    if model is not None and not (isinstance(model, str) and model):
        bad("embedding_model", "a model id (a string) or null")
    if dim is not None and not (type(dim) is int and dim > 0):
        bad("dim", f"a positive whole number or null, got {dim!r}")
    if "count" in doc and not (type(count) is int and count >= 0):
        bad("count", f"a whole number of memories, got {count!r}")
    if len(problems) > before:
        return None
    return Header(user, doc["exported_at"], model, dim, count, version)


def _entry(number: int, raw: bytes, header: Header | None, user_id: str, problems: list[Problem]) -> Entry | None:
    doc = _object(number, raw, problems)
    if doc is None:
        return None
    before = len(problems)

    def bad(name: str, message: str) -> None:
        problems.append(Problem(number, name, message))

    version = header.version if header is not None else VERSION
    known = {name for name in MEMORY_FIELDS if FIELDS_SINCE.get(name, 1) <= version} | set(VECTOR_FIELDS)
    for name in sorted(set(doc) - known):
        bad(name, "unknown field" if name not in MEMORY_FIELDS else f"not in a version-{version} file")
    memory_id = doc.get("id")
    try:
        if not isinstance(memory_id, str):
            raise ValueError
        uuid.UUID(memory_id)
    except ValueError:
        bad("id", "missing" if memory_id is None else f"not a memory id (a UUID): {memory_id!r}")
    if not isinstance(doc.get("memory"), str):
        bad("memory", "missing" if doc.get("memory") is None else f"expected a string, got {_kind(doc['memory'])}")
    state = doc.get("state")
    if state is not None and state not in STATES:
        bad("state", f"one of {', '.join(STATES)}, got {state!r}")
    for name in ("created_at", "updated_at", "occurred_at", "expires_at"):
        if doc.get(name) is not None and not _iso(doc[name]):
            bad(name, f"not an ISO 8601 time: {doc[name]!r}")
    vector, model = doc.get("embedding"), doc.get("embedding_model")
    if (vector is None) != (model is None):
        bad("embedding" if vector is None else "embedding_model", "embedding and embedding_model go together")
    elif vector is not None:
        if not isinstance(vector, list) or not vector or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in vector):
            bad("embedding", "expected a non-empty list of numbers")
        elif header is not None and model == header.embedding_model and header.dim and len(vector) != header.dim:
            bad("embedding", f"{len(vector)} numbers, the header says {model} makes {header.dim}")
        if not isinstance(model, str) or not model:
            bad("embedding_model", "expected a model id (a string)")
    if len(problems) > before:
        return None
    exported_at = header.exported_at if header is not None else None
    body = add_body(doc, user_id, exported_at, with_vector=True)
    body.pop("expires_at", None)  # whether it has passed is the import's to judge, at its own time
    for name, message in _against_limits(body):
        bad(name, message)
    if len(problems) > before:
        return None
    return Entry(number, doc)


def add_body(doc: dict, user_id: str, exported_at: str | None, with_vector: bool) -> dict:
    """The POST /v1/memories body (an item of /v1/memories/batch) that re-creates a memory of
    the file for `user_id`: text, metadata (plus `imported_from`), categories, importance,
    scope, occurred_at and expires_at; with its vector only when `with_vector`. State is not
    carried over: an imported memory is active."""
    metadata = dict(doc.get("metadata") or {}) if isinstance(doc.get("metadata"), dict) else doc.get("metadata")
    if isinstance(metadata, dict):
        metadata["imported_from"] = {"id": doc.get("id"), "exported_at": exported_at}
    body = {"user_id": user_id, "text": doc.get("memory"), "metadata": metadata, "infer": False}
    for name in ("agent_id", "run_id", "app_id", "importance", "occurred_at", "expires_at"):
        if doc.get(name) is not None:
            body[name] = doc[name]
    if doc.get("categories") is not None:
        body["categories"] = doc["categories"]
    if with_vector and doc.get("embedding") is not None:
        body["embedding"], body["embedding_model"] = doc["embedding"], doc["embedding_model"]
    return body


_BODY_TO_FILE = {"text": "memory"}


def _against_limits(body: dict) -> list[tuple[str | None, str]]:
    """(field of the file, problem) for each way `body` breaks the command API's rules."""
    from pydantic import ValidationError

    from application.requests import AddMemoryRequest

    try:
        AddMemoryRequest.model_validate(body)
    except ValidationError as exc:
        found = []
        for error in exc.errors():
            loc = [str(p) for p in error["loc"]]
            if loc:
                loc[0] = _BODY_TO_FILE.get(loc[0], loc[0])
            found.append((".".join(loc) or None, error["msg"]))
        return found
    return []


# ---- importing ---------------------------------------------------------------------------

def batches(bodies: list[dict], size: int, max_bytes: int) -> list[list[dict]]:
    """Consecutive runs of at most `size` bodies and about `max_bytes` of JSON each (the batch
    endpoint's body limit); the same file and size always give the same batches."""
    out: list[list[dict]] = []
    current: list[dict] = []
    used = 0
    for body in bodies:
        cost = len(json.dumps(body, ensure_ascii=False).encode()) + 2
        if current and (len(current) >= size or used + cost > max_bytes):
            out.append(current)
            current, used = [], 0
        current.append(body)
        used += cost
    if current:
        out.append(current)
    return out


def idempotency_key(digest: str, index: int) -> str:
    """The Idempotency-Key of batch `index` of a file: a re-run of the same import (after a
    crash, or by mistake) is answered from the first run and appends nothing."""
    return f"import-{digest[:40]}-{index}"
