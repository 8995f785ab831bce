"""`recallstack export` and `import`: a user's memories to and from a file (cli/transfer.py does the work)."""

from __future__ import annotations


def cmd_export(args) -> int:
    from cli.transfer import cmd_export as run

    return run(args)


def cmd_import(args) -> int:
    from cli.transfer import cmd_import as run

    return run(args)


def register(sub, command) -> None:
    """The export and import commands (`command` is cli.help_text.command)."""
    from cli.transfer import batch_size, user_id

    export = command(sub, "export", "write one user's memories to a file (JSON Lines)", """
        Reads the user's memories through the REST API (GET /v1/memories, oldest first) and
        writes a header line {format, version, user_id, exported_at, embedding_model, dim,
        count}, then one line per memory: id, memory (the text), metadata, categories,
        importance, agent_id, run_id, app_id, state, created_at, updated_at, occurred_at, and
        with --include-vectors its embedding and embedding_model, so an import into a server
        with the same model needs no re-embedding. The file appears only when complete.
        A progress bar goes to stderr; the summary to stdout (with --out - the file does).
    """, """
        recallstack export --user alice                          # alice.memories.jsonl
        recallstack export --user alice --out alice.jsonl --include-vectors --state any
        recallstack export --user alice --out - | gzip > alice.jsonl.gz
        recallstack export --user alice --json | jq .count
    """, """
        0    exported
        1    the API refused (the message says why), or --out exists (pass --force)
        2    usage error (a bad --user, --json with --out -)
        3    the REST API (or Postgres behind it) is unreachable
        130  Ctrl-C (no file is left under the --out name)
    """, json_output='{"user_id", "count", "file", "seconds", "state", "include_vectors", "embedding_model", "dim"}')
    export.add_argument("--user", required=True, type=user_id, metavar="USER_ID", help="whose memories")
    export.add_argument("--out", metavar="FILE", help="where to write (- for stdout; default USER_ID.memories.jsonl)")
    export.add_argument("--include-vectors", action="store_true",
                        help="also each memory's embedding and embedding_model (~8 KB per memory at 384 dimensions)")
    export.add_argument("--state", choices=("active", "any"), default="active",
                        help="active (default), or any: also archived and forgotten memories")
    export.add_argument("--force", action="store_true", help="replace --out if it exists")
    export.add_argument("--url", help="the REST base URL (default $RECALLSTACK_URL, else http://127.0.0.1:8080)")
    export.set_defaults(func=cmd_export)

    imp = command(sub, "import", "add the memories of an export file to a user", """
        Checks the whole file first (the header, every line and the add it becomes, against
        the command API's limits): a bad line is reported with its line number and field and
        nothing is imported. Then writes the memories through POST /v1/memories/batch, all or
        nothing per batch, with an Idempotency-Key per batch derived from the file's digest,
        so running the same import again (after a failure or Ctrl-C) adds nothing twice.
        Text, metadata, categories, importance, scope and occurred_at are kept; each memory
        gets a new id and metadata.imported_from = {id, exported_at}; archived and forgotten
        memories come back active. Vectors of the server's model and dimension are used as
        they are; the others are embedded again (stderr says how many, with which model).
    """, """
        recallstack import alice.memories.jsonl --user alice-copy
        recallstack import alice.jsonl --user bob --batch 200 --url http://10.0.0.5:8080
        gunzip -c alice.jsonl.gz | recallstack import - --user alice --json | jq .count
        recallstack import mem0-memories.json --from-mem0 --user alice   # mem0's get_all or export JSON
    """, """
        0    imported (or nothing to import)
        1    the file is not a valid export (line and field named; nothing imported), or the
             API refused a batch (the batches before it stay imported; re-run to finish)
        2    usage error (a bad --user or --batch)
        3    the REST API (or Kafka behind it) is unreachable
        130  Ctrl-C (re-run the same import to finish)
    """, json_output='{"user_id", "source_user_id", "count", "file", "seconds", "batches", "vectors_used", '
                     '"re_embedded", "embedding_model", "consistency_token"}')
    imp.add_argument("file", metavar="FILE", help="an export file (- for stdin)")
    imp.add_argument("--user", required=True, type=user_id, metavar="USER_ID", help="the user the memories go to")
    imp.add_argument("--batch", type=batch_size, default=500, metavar="N",
                     help="memories per batch, 1-1000 (default 500; large texts make smaller batches)")
    imp.add_argument("--url", help="the REST base URL (default $RECALLSTACK_URL, else http://127.0.0.1:8080)")
    imp.add_argument("--from-mem0", action="store_true",
                     help="FILE is a mem0 export: what MemoryClient.get_all returns (one page, or one page per line), "
                          "a list of mem0 memories, or its export API's {memories: [...]} (docs/mem0.md)")
    imp.set_defaults(func=cmd_import)
