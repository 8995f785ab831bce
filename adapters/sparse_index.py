"""The sparse index's read side: BM25 and fuzzy name matching per user, in-process (Tantivy).

One `SparseIndex` per query-API process. Each call stats two files (`<root>/live` and the
live version's `meta.json`, a few microseconds): a switch of `live` reopens the new
version, a commit of the projector (another process) reloads the reader, so a commit is
visible to the next call; nothing polls in the background.

Scoring. Tantivy's BM25 weighs a term by its document frequency in the whole index, every
user's memories together: a word rare in the index but in all of one user's memories would
drown that user's rare words (and the reverse). So each search weighs its terms by the
searching user's own figures: the documents of the search's scope (user, scope fields,
states, window) that contain the term, out of the scope's documents (two counts per term,
cached until the next commit), applied as a boost of idf(user) / idf(index) on the term's
query. Term frequencies and length normalisation stay Tantivy's (the average length is the
index's). The user and scope are clauses of the query itself, never a filter applied to a
global top-k, so a user's hits are never crowded out by other users'.

Names (today's trigram behaviour): a query name that has no exact BM25 match in the scope
is matched fuzzily over the unstemmed `words` field (domain/index_terms: a misspelt name or
identifier within one or two edits, a longer word it starts, or the parts of an identifier
it is a fragment of); those hits are appended after BM25's.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import tantivy

from adapters import sparse_layout, sparse_schema
from adapters.sparse_schema import micros, schema, term, text_terms
from domain import index_terms

Must, Should = tantivy.Occur.Must, tantivy.Occur.Should
_DF_CACHE_MAX = 50_000


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
    counts: dict = field(default_factory=dict)  # (filter key, term) -> count, for this commit only


def _idf(docs: int, df: int) -> float:
    return math.log(1 + (docs - df + 0.5) / (df + 0.5))


class SparseIndex:
    """Read side of the sparse index under `root` (RECALLSTACK_SPARSE_DIR)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._guard = threading.Lock()
        self._opened: _Opened | None = None

    # --- keeping up with the projector ---------------------------------------------------

    def _current(self) -> _Opened | None:
        """The open live version, reopened after a switch and reloaded after a commit."""
        opened = self._opened
        live_sig = _signature(self.root / sparse_layout.LIVE_FILE)
        if live_sig is None:
            return opened  # `live` gone: keep what is open (nothing, before the first build)
        if opened is None or live_sig != opened.live_sig:
            return self._reopen(live_sig) or opened
        meta_sig = _signature(sparse_layout.version_dir(self.root, opened.version) / "meta.json")
        if meta_sig != opened.meta_sig:
            return self._reload(opened, meta_sig)
        return opened

    def _reopen(self, live_sig: tuple) -> _Opened | None:
        with self._guard:
            version = sparse_layout.read_live(self.root)
            if version is None:
                return None
            path = sparse_layout.version_dir(self.root, version)
            meta_sig = _signature(path / "meta.json")
            try:
                index = sparse_schema.open_index(path)
                index.reload()
            except (ValueError, OSError):
                return None  # not there yet, or mid-replacement: the next call tries again
            self._opened = _Opened(version, index, live_sig, meta_sig)
            return self._opened

    def _reload(self, opened: _Opened, meta_sig: tuple | None) -> _Opened:
        with self._guard:
            if self._opened is not opened:
                return self._opened
            try:
                opened.index.reload()
            except (ValueError, OSError):
                return opened  # a segment went away under the reload: the next call tries again
            self._opened = _Opened(opened.version, opened.index, opened.live_sig, meta_sig)
            return self._opened

    def _searcher(self) -> tuple[_Opened, tantivy.Searcher]:
        opened = self._current()
        if opened is None:
            raise SparseUnavailable(f"no sparse index under {self.root} (has projector-sparse run?)")
        return opened, opened.index.searcher()

    def available(self) -> bool:
        """False when there is no index to read (the caller answers from Postgres instead)."""
        return self._current() is not None

    def refresh(self) -> None:
        """Reload now (the next call would too: each call compares the files' signatures)."""
        opened = self._current()
        if opened is not None:
            self._reload(opened, _signature(sparse_layout.version_dir(self.root, opened.version) / "meta.json"))

    def version(self) -> int | None:
        opened = self._current()
        return opened.version if opened is not None else None

    def positions(self, topic: str) -> dict[int, int]:
        """{partition: offset} the live version has applied of `topic`."""
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
        if fuzzy is not None and len(hits) < limit:
            seen = {memory_id for memory_id, _ in hits}
            found = _ids(searcher, searcher.search(fuzzy, limit=limit, count=False).hits)
            hits += [(memory_id, score) for memory_id, score in found if memory_id not in seen][:limit - len(hits)]
        return hits

    def _count(self, opened: _Opened, searcher: tantivy.Searcher, key: tuple, query: tantivy.Query) -> int:
        cached = opened.counts.get(key)
        if cached is None:
            if len(opened.counts) > _DF_CACHE_MAX:
                opened.counts.clear()
            cached = opened.counts[key] = searcher.search(query, limit=1, count=True).count
        return cached

    def _bm25_query(self, opened: _Opened, searcher: tantivy.Searcher, scope: tantivy.Query, key: tuple,
                    words: Sequence[str]) -> tantivy.Query | None:
        terms = list(dict.fromkeys(t for word in words for t in text_terms(word)))
        if not terms:
            return None
        docs = self._count(opened, searcher, (key, None), scope)
        if docs == 0:
            return None
        everyone = searcher.num_docs
        should = []
        for t in terms:
            df_all = searcher.doc_freq("text", t)
            if df_all == 0:
                continue
            query = tantivy.Query.term_query(schema(), "text", t, index_option="freq")
            df = self._count(opened, searcher, (key, t), tantivy.Query.boolean_query([(Must, scope), (Must, query)]))
            if df == 0:
                continue
            should.append((Should, tantivy.Query.boost_query(query, _idf(docs, df) / _idf(everyone, df_all))))
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
            options = [(Should, _fuzzy(whole)) for whole in wholes]
            if parts:
                options.append((Should, tantivy.Query.boolean_query([(Must, _fuzzy(p)) for p in parts])))
            if options:
                per_name.append((Should, tantivy.Query.boolean_query(options)))
        if not per_name:
            return None
        return tantivy.Query.boolean_query([(Must, tantivy.Query.const_score_query(scope, 0.0)),
                                            (Must, tantivy.Query.boolean_query(per_name))])

    def mentions_any(self, user_id: str, names: Sequence[str]) -> bool:
        """Whether a memory of the user (deleted ones aside) has an entity word equal to a
        word of one of `names`: a superset of what the graph source can find for them."""
        wanted = index_terms.entity_words(names)
        if not wanted:
            return False
        _opened, searcher = self._searcher()
        query = tantivy.Query.boolean_query([(Must, term("user_id", user_id)),
                                             (Must, tantivy.Query.term_set_query(schema(), "entities", wanted))])
        return bool(searcher.search(query, limit=1, count=False).hits)


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


def _fuzzy(word: str) -> tantivy.Query:
    edits, prefix = index_terms.edits(word), index_terms.as_prefix(word)
    if not edits and not prefix:
        return tantivy.Query.term_query(schema(), "words", word, index_option="basic")
    return tantivy.Query.fuzzy_term_query(schema(), "words", word, distance=edits, transposition_cost_one=True,
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
