"""`recallstack export` / `recallstack import`: one user's memories to and from a file.

Both go through the REST API (the gateway, `--url`, default $RECALLSTACK_URL or
http://127.0.0.1:8080) like any client: export pages GET /v1/memories (oldest first, with
the stored vectors on request), import checks the whole file (cli/memory_file.py) and then
writes it through POST /v1/memories/batch, all or nothing per batch, each batch with an
Idempotency-Key derived from the file's digest and the batch's index, so running the same
import again (after a crash, an interrupt, or twice) adds nothing twice.

Vectors: an import sends a memory's vector only when its model is the server's embedding
model (GET /v1/embedder) and its length the server's dimension; the command API checks
that again and refuses a mismatch. Otherwise the command API embeds the text again.
Imported memories get new ids, keep the original's in `metadata.imported_from`, and are
active: forgotten / archived states are not carried over.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from rich.markup import escape

from cli.memory_file import (Entry, FormatError, Header, MemoryFile, add_body, batches, header_line, idempotency_key,
                             memory_line, read_file)
from cli.output import FAILED, OK, UNREACHABLE, USAGE, Activity, console, describe, emit_json, error, print_table
from domain.identifiers import ID_PATTERN, UUID_PATTERN

# httpx, rich.progress and the SDK's helpers are imported where used: `recallstack --help`
# and every other command import this module for its argument types.

MAX_BATCH = 1_000  # what POST /v1/memories/batch takes
MAX_BATCH_BYTES = 12 * 1024 * 1024  # under its 16 MiB body limit, with room
EXPORT_PAGE = 1_000
EXPORT_PAGE_WITH_VECTORS = 250  # ~8 KB of JSON per 384-dimensional vector
EXPORT_RESTARTS = 3


# ---- arguments ---------------------------------------------------------------------------

def user_id(value: str) -> str:
    """--user: a user id as every API takes it."""
    if not re.fullmatch(ID_PATTERN, value):  # fullmatch: `$` alone lets a trailing newline through
        raise argparse.ArgumentTypeError(f"not a user id: {value!r} (1-128 of A-Z a-z 0-9 _ . : @ -, starting with "
                                         "a letter or digit)")
    return value


def key_ref(value: str) -> str:
    """KEY_ID_OR_PREFIX (`keys revoke`): a key id (a UUID) or a visible prefix (rsk_ and 8 characters)."""
    if re.fullmatch(UUID_PATTERN, value) or re.fullmatch(r"rsk_[A-Za-z0-9_-]{8}", value):
        return value
    raise argparse.ArgumentTypeError(f"not a key id or prefix: {value!r} (a UUID, or rsk_ and 8 characters as "
                                     "`recallstack keys list` shows)")


def batch_size(value: str) -> int:
    try:
        size = int(value)
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_BATCH:
        raise argparse.ArgumentTypeError(f"--batch takes 1-{MAX_BATCH}, got {value!r}")
    return size


def _target(args) -> tuple[str, str | None]:
    """The base URL (--url, else RECALLSTACK_URL, else the local stack's) and the key to send
    ($RECALLSTACK_API_KEY, else the local stack's admin key)."""
    from cli.keys import cli_api_key
    from settings import Settings

    cfg = Settings.from_env()
    return (args.url or cfg.client_url or f"http://127.0.0.1:{cfg.gateway_port}").rstrip("/"), cli_api_key(cfg)


def _fail(args, code: int, kind: str, message: str) -> int:
    error(message)
    if getattr(args, "json", False):
        emit_json({"error": {"code": kind, "message": message}})
    return code


# ---- the REST API ------------------------------------------------------------------------

class ApiFailure(Exception):
    """The API answered with an error, after the retries worth making."""

    def __init__(self, status: int, code: str | None, message: str, field: str | None):
        super().__init__(message)
        self.status, self.code, self.field = status, code, field


class Api:
    """A small synchronous client: retries what is worth retrying (429, 502-504, 409
    idempotency_in_progress, connection failures; the SDK's policy), raises ApiFailure otherwise."""

    def __init__(self, base_url: str, key: str | None):
        import httpx

        from recallstack.retry import RetryPolicy

        self.base_url = base_url
        self.policy = RetryPolicy(max_attempts=8, base_delay=0.5, max_delay=8.0, total_timeout=120.0)
        self.client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(300.0, connect=5.0),
                                   headers={"Authorization": f"Bearer {key}"} if key else None)

    def __enter__(self) -> "Api":
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()

    def call(self, method: str, path: str, **kwargs) -> dict:
        import httpx

        state = self.policy.start()
        while True:
            try:
                outcome: httpx.Response | BaseException = self.client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                outcome = exc
            if isinstance(outcome, httpx.Response) and outcome.status_code < 400:
                return outcome.json()
            delay = state.next_delay(outcome)
            if delay is None:
                if isinstance(outcome, BaseException):
                    raise outcome
                raise _failure(outcome)
            time.sleep(delay)


def _failure(response) -> ApiFailure:  # an httpx.Response (httpx is imported when a call is made)
    try:
        body = response.json()["error"]
        details = body.get("details") or {}
        field = details.get("field") or next((e.get("field") for e in details.get("errors") or ()), None)
        return ApiFailure(response.status_code, body.get("code"), body.get("message") or response.text[:300], field)
    except (ValueError, KeyError, TypeError, AttributeError):
        return ApiFailure(response.status_code, None, f"HTTP {response.status_code}: {response.text[:300]}", None)


def _unreachable(args, base_url: str, exc: BaseException, after: str = "") -> int:
    return _fail(args, UNREACHABLE, "unreachable", f"the REST API at {base_url} is unreachable: {describe(exc)}"
                 f"{after} (is the stack up? `recallstack status` shows what runs)")


# ---- progress ----------------------------------------------------------------------------

class Bar:
    """A progress bar on stderr (count, rate, ETA) when it is a terminal; a plain line per
    step otherwise."""

    def __init__(self, description: str, total: int | None, unit: str):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.description, self.total, self.unit, self.done = description, total, unit, 0
        self.began = time.monotonic()
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True,
        ) if console.is_terminal else None
        self._task = None

    def __enter__(self) -> "Bar":
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task(escape(self.description), total=self.total, rate="")
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, n: int, total: int | None = None) -> None:
        self.done += n
        if total is not None:
            self.total = total
        rate = self.done / max(time.monotonic() - self.began, 1e-6)
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, total=self.total, rate=f"{rate:,.0f} {self.unit}/s")
        else:
            of = f"/{self.total:,}" if self.total is not None else ""
            console.print(f"{self.description}: {self.done:,}{of} {self.unit}", highlight=False, soft_wrap=True)


# ---- export ------------------------------------------------------------------------------

class _Shifted(Exception):
    """Memories were removed while paging: later pages moved back, one may have been skipped."""


def cmd_export(args) -> int:
    import httpx

    base_url, key = _target(args)
    to_stdout = args.out == "-"
    if to_stdout and args.json:
        error("--json needs --out FILE: with --out - stdout carries the memories")
        return USAGE
    out = None if to_stdout else Path(args.out or f"{args.user}.memories.jsonl")
    if out is not None and out.exists() and not args.force:
        return _fail(args, FAILED, "failed", f"{out} exists; choose another --out or pass --force to replace it")
    began = time.monotonic()
    try:
        with Api(base_url, key) as api:
            info = api.call("GET", "/v1/embedder")
            exported_at = datetime.now(timezone.utc).isoformat()
            for attempt in range(EXPORT_RESTARTS + 1):
                spool = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024, mode="w+", encoding="utf-8")
                try:
                    count = _export_pages(api, args, spool)
                    break
                except _Shifted:
                    spool.close()
                    if attempt == EXPORT_RESTARTS:
                        return _fail(args, FAILED, "failed", f"memories of {args.user} kept being removed while "
                                     "exporting; try again when the user is quieter")
                    console.print("memories were removed while exporting: starting over, so none is skipped",
                                  soft_wrap=True)
    except httpx.TransportError as exc:
        return _unreachable(args, base_url, exc)
    except ApiFailure as exc:
        return _fail(args, UNREACHABLE if exc.status == 503 else FAILED,
                     "unreachable" if exc.status == 503 else "failed", f"export of {args.user}: {exc}")
    header = Header(user_id=args.user, exported_at=exported_at, embedding_model=info.get("embedding_model"),
                    dim=info.get("dim"), count=count)
    with spool:
        spool.seek(0)
        if to_stdout:
            sys.stdout.write(header_line(header))
            shutil.copyfileobj(spool, sys.stdout)
            sys.stdout.flush()
        else:
            part = out.with_name(out.name + ".part")
            with open(part, "w", encoding="utf-8") as f:
                f.write(header_line(header))
                shutil.copyfileobj(spool, f)
                f.flush()
                os.fsync(f.fileno())
            part.replace(out)  # all or nothing: a crash never leaves a half file under the name
    seconds = round(time.monotonic() - began, 2)
    where = "-" if to_stdout else str(out)
    summary = {"user_id": args.user, "count": count, "file": where, "seconds": seconds, "state": args.state,
               "include_vectors": args.include_vectors, "embedding_model": header.embedding_model, "dim": header.dim}
    if args.json:
        emit_json(summary)
    elif to_stdout:
        console.print(f"exported {count:,} memories of {args.user} in {seconds:.1f}s", highlight=False,
                      soft_wrap=True)
    else:
        print_table([{"user_id": args.user, "memories": count, "file": where, "vectors": args.include_vectors,
                      "seconds": seconds}], f"exported {args.user}")
    return OK


def _export_pages(api: Api, args, spool) -> int:
    """Every memory of the user (oldest first) written to `spool` as file lines; the count.
    Pages are offsets in creation order: a memory created meanwhile comes last (and is
    included), one removed meanwhile would shift the rest back, so a shrinking total starts
    the export over."""
    page_size = EXPORT_PAGE_WITH_VECTORS if args.include_vectors else EXPORT_PAGE
    seen: set[str] = set()
    last_total = None
    with Bar(f"export {args.user}", None, "memories") as bar:
        page = 1
        while True:
            answer = api.call("GET", "/v1/memories", params={
                "user_id": args.user, "state": args.state, "sort": "created_at", "order": "asc", "page": page,
                "page_size": page_size, "include_vectors": str(args.include_vectors).lower()})
            total = answer["total"]
            if last_total is not None and total < last_total:
                raise _Shifted()
            last_total = total
            fresh = [m for m in answer["results"] if m["id"] not in seen]
            for memory in fresh:
                seen.add(memory["id"])
                spool.write(memory_line(memory, args.include_vectors))
            bar.advance(len(fresh), total)
            if not answer["has_more"]:
                return len(seen)
            page += 1


# ---- import ------------------------------------------------------------------------------

def cmd_import(args) -> int:
    import httpx

    from recallstack.consistency import merge

    base_url, key = _target(args)
    began = time.monotonic()
    name = "stdin" if args.file == "-" else args.file
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        return _fail(args, FAILED, "failed", f"cannot read {name}: {describe(exc)}")
    with Activity(f"checking {name} ({len(data):,} bytes)"):
        try:
            if getattr(args, "from_mem0", False):  # mem0's get_all or export JSON (cli/mem0_file.py)
                from cli.mem0_file import export_file
                data = export_file(data)
            file = read_file(data, args.user)
        except FormatError as exc:
            if exc.total > 1:  # every one (up to 20) on its own line; the error repeats the first three
                for problem in exc.problems:
                    console.print(f"  {escape(name)}: {escape(str(problem))}", highlight=False, soft_wrap=True)
                if exc.total > len(exc.problems):
                    console.print(f"  ... and {exc.total - len(exc.problems)} more", highlight=False)
            return _fail(args, FAILED, "failed", f"{name} is not a valid recallstack export, nothing was imported: "
                                                 f"{exc}")
    imported, token = 0, None
    try:
        with Api(base_url, key) as api:
            info = api.call("GET", "/v1/embedder")
            # A memory whose expiry has passed would be invisible at once: it is left out.
            now = datetime.now(timezone.utc)
            live = [entry for entry in file.entries if not entry.expired(now)]
            expired = len(file.entries) - len(live)
            bodies, with_vectors = _bodies(file, live, info, args.user)
            _say_how_vectors_are_made(file, info, with_vectors)
            if expired:
                console.print(f"{expired:,} memories of {escape(name)} have expired since the export: not imported",
                              highlight=False, soft_wrap=True)
            groups = batches(bodies, args.batch, MAX_BATCH_BYTES)
            lines = [entry.line for entry in live]
            try:
                with Bar(f"import into {args.user}", len(bodies), "memories") as bar:
                    for index, group in enumerate(groups):
                        try:
                            # Exported memories are not turns of one conversation: no context is derived.
                            answer = api.call("POST", "/v1/memories/batch",
                                              json={"memories": group, "context_turns": 0},
                                              headers={"Idempotency-Key": idempotency_key(file.digest, index)})
                        except ApiFailure as exc:
                            return _refused(args, name, exc, index, len(groups), lines[imported:imported + len(group)],
                                            imported)
                        token = merge(token, answer["consistency_token"])
                        imported += len(group)
                        bar.advance(len(group))
            except KeyboardInterrupt:
                console.print(f"interrupted after {imported:,} of {len(bodies):,} memories: run the same import again "
                              "to finish (what was imported is not added twice)", soft_wrap=True)
                raise
    except httpx.TransportError as exc:
        return _unreachable(args, base_url, exc, f" after {imported:,} memories were imported (run the same import "
                                                 "again to finish: they are not added twice)" if imported else "")
    except ApiFailure as exc:  # GET /v1/embedder
        return _fail(args, UNREACHABLE if exc.status == 503 else FAILED,
                     "unreachable" if exc.status == 503 else "failed", f"import into {args.user}: {exc}")
    seconds = round(time.monotonic() - began, 2)
    summary = {"user_id": args.user, "source_user_id": file.header.user_id, "count": imported, "file": name,
               "seconds": seconds, "batches": len(groups), "vectors_used": with_vectors, "expired_skipped": expired,
               "re_embedded": imported - with_vectors, "embedding_model": info.get("embedding_model"),
               "consistency_token": token}
    if args.json:
        emit_json(summary)
    else:
        print_table([{"user_id": args.user, "from": file.header.user_id, "memories": imported, "batches": len(groups),
                      "vectors used": with_vectors, "re-embedded": imported - with_vectors, "seconds": seconds}],
                    f"imported {name}")
    return OK


def _bodies(file: MemoryFile, live: list[Entry], info: dict, user: str) -> tuple[list[dict], int]:
    """The batch items of the file's `live` entries and how many carry their vector (those whose
    model and dimension are the server's: the command API does not embed them again)."""
    model, dim = info.get("embedding_model"), info.get("dim")
    bodies, with_vectors = [], 0
    for entry in live:
        usable = entry.embedding is not None and entry.embedding_model == model and len(entry.embedding) == dim
        with_vectors += usable
        bodies.append(add_body(entry.doc, user, file.header.exported_at, with_vector=usable))
    return bodies, with_vectors


def _say_how_vectors_are_made(file: MemoryFile, info: dict, with_vectors: int) -> None:
    model = info.get("embedding_model")
    count = len(file.entries)
    if with_vectors:
        console.print(f"using the file's vectors for {with_vectors:,} memories ({model}, {info.get('dim')} "
                      "dimensions): not embedded again", highlight=False, soft_wrap=True)
    others = count - with_vectors
    if others:
        models = sorted({e.embedding_model for e in file.entries if e.embedding is not None} - {model})
        why = (f"the file's vectors are of {', '.join(models)}" if models else
               "the file has no vectors (export with --include-vectors to carry them)"
               if with_vectors == 0 else "some memories have no vector of this model")
        console.print(f"re-embedding {others:,} memories with {model} ({why})", highlight=False, soft_wrap=True)


def _refused(args, name: str, exc: ApiFailure, index: int, batches_total: int, lines: list[int],
             imported: int) -> int:
    """A batch the API refused: which lines, which field, and where the import stands."""
    where = f"batch {index + 1}/{batches_total} (lines {lines[0]}-{lines[-1]})" if lines else f"batch {index + 1}"
    found = re.match(r"memories\.(\d+)\.?(.*)", exc.field or "")
    if found and int(found.group(1)) < len(lines):
        field = {"text": "memory"}.get(found.group(2), found.group(2)) or None
        where = f"line {lines[int(found.group(1))]}" + (f", field {field}" if field else "")
    if exc.code == "idempotency_key_reused":
        reason = ("this file was imported into this user before with other options (another --batch, or the "
                  "server's embedding model changed): re-run with the options of the first run")
    else:
        reason = str(exc)
    stand = (f"; {imported:,} memories (the batches before it) were imported: fix the cause and run the same "
             "import again, they are not added twice" if imported else "; nothing was imported")
    unreachable = exc.status == 503
    return _fail(args, UNREACHABLE if unreachable else FAILED, "unreachable" if unreachable else "failed",
                 f"{name}: {where}: refused ({exc.status}): {reason}{stand}")
