"""The in-process pieces of the sparse engines bench (bench/sparse_engines.py): the Tantivy
engine on a real index, and the helpers that shape its queries and probes."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # benches import each other from bench/

from sparse_engines import (DEPTH, Corpus, Query, TantivyEngine, appended, fuzzy_distance,  # noqa: E402
                            memory_id, misspelt, name_tokens)

TEXTS = [
    ("alice", "Alice: I adopted a dog named Biscuit last spring."),
    ("alice", "Alice: We went hiking in the mountains with Biscuit and my sister, who loves long walks and "
              "talking about her garden, her job, her neighbours and every other thing under the sun."),
    ("alice", "Alice: Painting sunsets relaxes me."),
    ("bob", "Bob: My dog Biscuit is a beagle."),
    ("bob", "Bob: I paint every weekend."),
]


def corpus() -> Corpus:
    return Corpus("test", [memory_id(i) for i in range(len(TEXTS))], [u for u, _ in TEXTS], [t for _, t in TEXTS], [])


def search(engine: TantivyEngine, user: str, text: str) -> list[str]:
    return asyncio.run(engine.search(Query.of(user, text)))


def test_misspelt_swaps_or_drops_one_middle_letter():
    assert misspelt("Caroline", 0) == "Carloine"
    assert misspelt("Caroline", 1) == "Caroine"
    assert misspelt("Patterson", 2) != "Patterson" and len(misspelt("Patterson", 3)) == len("Patterson") - 1


def test_name_tokens_and_distances():
    assert name_tokens(["Biscuit", "release_build.sh", "Al", "Biscuit"]) == ["biscuit", "release", "build"]
    assert [fuzzy_distance(t) for t in ("bisc", "biscu", "biscuit")] == [1, 1, 2]


def test_appended_keeps_bm25_order_then_adds_only_new_ids():
    assert appended(["a", "b"], ["b", "c", "a", "d"]) == ["a", "b", "c", "d"]
    assert len(appended([str(i) for i in range(DEPTH)], ["x"])) == DEPTH


def test_tantivy_engine_searches_one_user_only_and_stems():
    for flat in (False, True):
        engine = TantivyEngine(flat=flat)
        c = corpus()
        try:
            asyncio.run(engine.build(c))
            hits = search(engine, "alice", "Which paintings about the dog?")
            assert set(hits) == {c.ids[0], c.ids[2]}  # "paintings" -> paint, "dog"; never Bob's
            assert search(engine, "bob", "hiking mountains") == []
        finally:
            asyncio.run(engine.close())


def test_tantivy_engine_finds_a_misspelt_name():
    engine = TantivyEngine()
    c = corpus()
    try:
        asyncio.run(engine.build(c))
        assert set(search(engine, "bob", "What about Bisciut?")) == {c.ids[3]}
    finally:
        asyncio.run(engine.close())


def test_flat_index_ignores_length():
    """Padded to one length, the long memory that names Biscuit once ranks as the short one does
    (the default index puts the short one first: b = 0.75)."""
    c = corpus()
    ranked = {}
    for flat in (False, True):
        engine = TantivyEngine(flat=flat)
        try:
            asyncio.run(engine.build(c))
            query = engine._user_and("alice", engine.index.parse_query("biscuit", ["text"]))
            hits = engine.searcher.search(query, 10).hits
            ranked[flat] = sorted(round(score, 4) for score, _ in hits)
        finally:
            asyncio.run(engine.close())
    assert ranked[False][0] < ranked[False][1]
    assert ranked[True][0] == ranked[True][1]
