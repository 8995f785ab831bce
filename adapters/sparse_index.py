"""The sparse index's read side: BM25 and fuzzy name matching per user, in-process (Tantivy).

One `SparseIndex` per query-API process. Each call stats two files (`<root>/live` and the
live version's `meta.json`, a few microseconds): a switch of `live` reopens the new
version (in the call); the first search after a commit of the projector (another process)
reloads before it answers (a millisecond or so; it can wait on the writer's file lock), so a
search never answers from an older commit than the files hold: once the projector's lag is
0, every search sees everything.
Nothing polls: an idle reader costs nothing.

Scoring. Tantivy's BM25 weighs a term by its document frequency in the whole index, every
user's memories together: a word rare in the index but in all of one user's memories would
drown that user's rare words (and the reverse). So each search weighs its terms by the
searching user's own figures: the documents of the search's scope (user, scope fields,
states, window) that contain the term, out of the scope's documents (counts cached for
COUNTS_TTL_S whatever commits meanwhile, as the SQL source caches its corpus figures: they
move slowly, and counting a common term among 100,000 memories costs more than the search),
applied as a boost of idf(user) / idf(index) on the term's query. When the scope holds all
but at most 1 % of the index's documents (one user's laptop), its figures are the index's
within that 1 %: no counting, Tantivy's own weights. Term frequencies and length
normalisation stay Tantivy's (the average length is the index's). The user and scope are clauses of the query itself, never a filter applied to a
global top-k, so a user's hits are never crowded out by other users'.

Names (today's trigram behaviour): a query name that has no exact BM25 match in the scope
is matched fuzzily over the unstemmed `words` and `idents` fields (domain/index_terms: a
misspelt name or identifier within one or two edits, a longer word it starts, or the parts
of an identifier it is a fragment of); those hits are appended after BM25's.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import tantivy

from adapters import sparse_layout, sparse_schema
from adapters.sparse_schema import micros, schema, term, text_terms
from domain import index_terms

log = logging.getLogger(__name__)
Must, Should = tantivy.Occur.Must, tantivy.Occur.Should
COUNTS_TTL_S = 30.0
HUB_MIN = 50  # memories naming an entity: at most this many, never a hub (a small user's names)
HUB_SHARE = 0.2  # ... or at most this share of the user's memories
COUNTS_MAX = 50_000  # cached counts (scope, term) before the cache starts afresh
# BM25 over a memory's context (the turns before it, domain/turn_context) counts this share of BM25
# over its own text: LoCoMo's dev split, offline, hit@10 0.727 -> 0.770 at 0.5 (0.35: 0.762, 0.75: 0.772).
CONTEXT_WEIGHT = 0.5
ALONE_WITHIN = 0.01  # the scope is the index when the other documents are at most this share of it


class SparseUnavailable(RuntimeError):
    """There is no readable sparse index (none built yet, or its files cannot be opened)."""


def _signature(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@dataclass
class _Opened:
    version: int
    index: tantivy.Index
    live_sig: tuple
    meta_sig: tuple | None


def _idf(docs: int, df: int) -> float:
    return math.log(1 + (docs - df + 0.5) / (df + 0.5))


class SparseIndex:
    """Read side of the sparse index under `root` (RECALLSTACK_SPARSE_DIR)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._guard = threading.Lock()
        self._opened: _Opened | None = None
        self._refused: tuple | None = None  # the files' signatures when the live version could not be opened
        self._counts: dict[tuple, tuple[float, int]] = {}  # (scope key, term or None) -> (expires, count)

    # --- keeping up with the projector ---------------------------------------------------

    def _current(self) -> _Opened | None:
        """The open live version, reopened after a switch and reloaded after a commit."""
        opened = self._opened
        live_sig = _signature(self.root / sparse_layout.LIVE_FILE)
        if live_sig is None:
            # Never removed by a projector or a replay (they replace it atomically): the index was
            # taken away (an operator rebuilding it, a lost volume). Say so, do not serve the old files.
            self._opened = None
            return None
        if opened is None or live_sig != opened.live_sig:
            return self._reopen(live_sig) or opened
        meta_sig = _signature(sparse_layout.version_dir(self.root, opened.version) / "meta.json")
        if meta_sig != opened.meta_sig:
            self._reload(opened, meta_sig)
        return self._opened

    def _reopen(self, live_sig: tuple) -> _Opened | None:
        with self._guard:
            version = sparse_layout.read_live(self.root)
            if version is None:
                return None
            path = sparse_layout.version_dir(self.root, version)
            meta_sig = _signature(path / "meta.json")
            if self._refused == (live_sig, meta_sig):
                return None  # as unreadable as on the last call: not opened again until a file changes
            try:
                index = sparse_schema.open_index(path)
                index.reload()
            except (ValueError, OSError) as exc:  # not there yet, mid-replacement, or of another schema
                if (live_sig, meta_sig) != self._refused:
                    log.warning("sparse index v%s not readable: %s", version, exc)
                self._refused = (live_sig, meta_sig)
                return None
            self._refused = None
            self._opened = _Opened(version, index, live_sig, meta_sig)
            return self._opened

    def _reload(self, opened: _Opened, meta_sig: tuple | None) -> None:
        with self._guard:
            if self._opened is not opened:
                return
            try:
                opened.index.reload()
            except (ValueError, OSError):
                return  # a segment went away under the reload: the next call tries again
            self._opened = _Opened(opened.version, opened.index, opened.live_sig, meta_sig)

    def _searcher(self) -> tuple[_Opened, tantivy.Searcher]:
        opened = self._current()
        if opened is None:
            raise SparseUnavailable(f"no sparse index under {self.root} (has projector-sparse run?)")
        return opened, opened.index.searcher()

    def available(self) -> bool:
        """False when there is no index to read (the caller answers from Postgres instead)."""
        return self._current() is not None

    def refresh(self) -> None:
        """Take the last commit now (any call does, before it answers)."""
        self._current()

    def version(self) -> int | None:
        opened = self._current()
        return opened.version if opened is not None else None

    def positions(self, topic: str) -> dict[int, int]:
        """{partition: offset} the live version has applied of `topic` (at its last commit, which
        searches after this call see too)."""
        _opened, searcher = self._searcher()
        return sparse_schema.read_positions(searcher, topic)

    # --- searching -------------------------------------------------------------------------

    def search(self, user_id: str, words: Sequence[str], names: Sequence[str], fields: dict[str, str],
               include_archived: bool, window: tuple[datetime, datetime] | None,
               limit: int) -> list[tuple[str, float]]:
        """(memory id, score) best first: BM25 of `words` (any of them) over the user's
        memories in scope, then fuzzy matches of `names` BM25 did not return."""
        if limit <= 0:
            return []
        opened, searcher = self._searcher()
        scope = _scope(user_id, fields, include_archived, window)
        key = (user_id, tuple(sorted(fields.items())), include_archived, window)
        hits: list[tuple[str, float]] = []
        text = self._bm25_query(opened, searcher, scope, key, words)
        if text is not None:
            hits = _ids(searcher, searcher.search(text, limit=limit, count=False).hits)
        fuzzy = self._names_query(searcher, scope, names)
        if fuzzy is not None:
            seen = {memory_id for memory_id, _ in hits}
            found = [hit for hit in _ids(searcher, searcher.search(fuzzy, limit=limit, count=False).hits)
                     if hit[0] not in seen]
            # A misspelt name's memories keep a place even when common words fill the depth: they
            # take up to a third of it, from BM25's weakest tail.
            room = max(limit - len(hits), min(len(found), limit // 3))
            hits = hits[:limit - room] + found[:room]
        return hits

    def _count(self, searcher: tantivy.Searcher, key: tuple, query: tantivy.Query) -> int:
        """A scope's document count (or a term's within it), cached COUNTS_TTL_S: a weight
        from a few seconds ago scores as well. Only counts above zero are kept: a zero decides
        that a term (or the whole scope) is skipped, and a memory written since must not be."""
        now = time.monotonic()
        cached = self._counts.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        if len(self._counts) >= COUNTS_MAX:
            self._counts = {}
        count = searcher.search(query, limit=1, count=True).count
        if count:
            self._counts[key] = (now + COUNTS_TTL_S, count)
        return count

    def _bm25_query(self, opened: _Opened, searcher: tantivy.Searcher, scope: tantivy.Query, key: tuple,
                    words: Sequence[str]) -> tantivy.Query | None:
        terms = list(dict.fromkeys(t for word in words for t in text_terms(word)))
        if not terms:
            return None
        key = (opened.version, *key)
        docs = self._count(searcher, (key, None), scope)
        if docs == 0:
            return None
        everyone = searcher.num_docs
        alone = everyone - docs <= ALONE_WITHIN * docs
        should = []
        for t in terms:
            df_all = searcher.doc_freq("text", t)
            if df_all == 0:
                continue
            query = tantivy.Query.term_query(schema(), "text", t, index_option="freq")
            weight = 1.0
            if not alone:
                df = self._count(searcher, (key, t), tantivy.Query.boolean_query([(Must, scope), (Must, query)]))
                if df == 0:
                    continue
                weight = _idf(docs, df) / _idf(everyone, df_all)
            should.append((Should, query if weight == 1.0 else tantivy.Query.boost_query(query, weight)))
            if searcher.doc_freq("context", t):  # the turns before a memory, at a lower weight
                around = tantivy.Query.term_query(schema(), "context", t, index_option="freq")
                should.append((Should, tantivy.Query.boost_query(around, weight * CONTEXT_WEIGHT)))
        if not should:
            return None
        return tantivy.Query.boolean_query([(Must, tantivy.Query.const_score_query(scope, 0.0)),
                                            (Must, tantivy.Query.boolean_query(should))])

    def _names_query(self, searcher: tantivy.Searcher, scope: tantivy.Query,
                     names: Sequence[str]) -> tantivy.Query | None:
        per_name = []
        for name in names:
            wholes, parts = index_terms.name_terms(name)
            stems = list(dict.fromkeys(text_terms(name)))
            if stems and searcher.search(tantivy.Query.boolean_query(
                    [(Must, scope)] + [(Must, tantivy.Query.term_query(schema(), "text", s, index_option="freq"))
                                       for s in stems]), limit=1, count=False).hits:
                continue  # an exact match: BM25's job
            options = [(Should, _fuzzy("idents", whole)) for whole in wholes]
            if parts:  # each word in the words, or among the identifiers' humps
                options.append((Should, tantivy.Query.boolean_query([(Must, tantivy.Query.boolean_query(
                    [(Should, _fuzzy("words", p)), (Should, _fuzzy("idents", p))])) for p in parts])))
            if options:
                per_name.append((Should, tantivy.Query.boolean_query(options)))
        if not per_name:
            return None
        return tantivy.Query.boolean_query([(Must, tantivy.Query.const_score_query(scope, 0.0)),
                                            (Must, tantivy.Query.boolean_query(per_name))])

    def graph_names(self, user_id: str, names: Sequence[str]) -> list[str]:
        """Of `names`, those worth the graph source's round trip: an entity word of one of the
        user's memories (deleted ones aside) is a word of the name, and the name is no hub,
        that is, memories with its words are at most HUB_MIN or at most HUB_SHARE of the
        user's. A hub (a conversation's speaker, named in half of its memories) seeds the
        graph with an arbitrary sample of those: on LoCoMo that ranked worse than no graph
        at all and cost ~8 ms of CPU a search (docs/search.md)."""
        opened, searcher = self._searcher()
        user = term("user_id", user_id)
        kept, everyone = [], None
        for name in names:
            wanted = index_terms.entity_words([name])
            if not wanted:
                continue
            key = (opened.version, user_id, "entities", tuple(wanted))
            mentions = self._count(searcher, key, tantivy.Query.boolean_query(
                [(Must, user), (Must, tantivy.Query.term_set_query(schema(), "entities", wanted))]))
            if mentions == 0:
                continue
            if mentions > HUB_MIN:
                if everyone is None:
                    everyone = self._count(searcher, (opened.version, user_id, "all"), user)
                if mentions > HUB_SHARE * everyone:
                    continue
            kept.append(name)
        return kept


def _scope(user_id: str, fields: dict[str, str], include_archived: bool,
           window: tuple[datetime, datetime] | None) -> tantivy.Query:
    clauses = [(Must, term("user_id", user_id))]
    for name in sparse_schema.SCOPE_FIELDS:
        if fields.get(name) is not None:
            clauses.append((Must, term(name, fields[name])))
    clauses.append((Must, tantivy.Query.term_set_query(schema(), "state", ["active", "archived"])
                    if include_archived else term("state", "active")))
    if window is not None:
        clauses.append((Must, tantivy.Query.range_query(schema(), "occurred_us", tantivy.FieldType.Integer,
                                                        micros(window[0]), micros(window[1]),
                                                        include_lower=True, include_upper=False)))
    return tantivy.Query.boolean_query(clauses)


def _fuzzy(field_name: str, word: str) -> tantivy.Query:
    edits, prefix = index_terms.edits(word), index_terms.as_prefix(word)
    if not edits and not prefix:
        return tantivy.Query.term_query(schema(), field_name, word, index_option="basic")
    return tantivy.Query.fuzzy_term_query(schema(), field_name, word, distance=edits, transposition_cost_one=True,
                                          prefix=prefix)


def _ids(searcher: tantivy.Searcher, hits: list) -> list[tuple[str, float]]:
    """(memory id, score) of hits, from the fast id columns (the stored document only for an
    id that is not a UUID)."""
    if not hits:
        return []
    addresses = [address for _score, address in hits]
    high = searcher.fast_field_values("id_hi", addresses)
    low = searcher.fast_field_values("id_lo", addresses)
    out = []
    for (score, address), h, lo in zip(hits, high, low):
        memory_id = sparse_schema.id_from_halves(h, lo) or searcher.doc(address)["memory_id"][0]
        out.append((memory_id, float(score)))
    return out
