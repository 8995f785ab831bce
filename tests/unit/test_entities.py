"""The offline extractor: a table of sentences with the entities and relations they must give."""

from __future__ import annotations

import pytest

from domain.entities import MAX_ENTITIES, extract
from domain.events import Entity, Relation


def entities(text: str) -> list[tuple[str, str]]:
    return [(e.name, e.type) for e in extract(text)[0]]


def relations(text: str) -> list[tuple[str, str, str]]:
    return [(r.source, r.type, r.target) for r in extract(text)[1]]


ENTITY_TABLE = [
    # persons
    ("Ana Lopes works at Acme Corp.", [("Ana Lopes", "person"), ("Acme Corp", "organization")]),
    ("I met Ana yesterday and Bob said hi.", [("Ana", "person"), ("yesterday", "date"), ("Bob", "person")]),
    ("Alice likes jazz.", [("Alice", "person")]),
    ("Dr. Jean-Luc O'Brien works for Globex.", [("Jean-Luc O'Brien", "person"), ("Globex", "organization")]),
    ("Yesterday Ana Lopes called.", [("Yesterday", "date"), ("Ana Lopes", "person")]),
    ("Ana's birthday is on 12th of March.", [("Ana", "person"), ("12th of March", "date")]),
    ("Tim Cook and Satya Nadella met.", [("Tim Cook", "person"), ("Satya Nadella", "person")]),
    ("Meeting with Ana Lopes at Google tomorrow.",
     [("Ana Lopes", "person"), ("Google", "organization"), ("tomorrow", "date")]),
    # emails and urls
    ("Mail ana.lopes@example.com or see https://example.com/docs (the guide).",
     [("ana.lopes@example.com", "email"), ("https://example.com/docs", "url")]),
    ("Docs at www.example.org/start, wiki http://x.org/a_(b) and example.com.",
     [("www.example.org/start", "url"), ("http://x.org/a_(b)", "url"), ("example.com", "url")]),
    # code identifiers
    ("Call Foo.bar() and os.path.join, check MAX_RETRIES, user_id and getUserName.",
     [("Foo.bar()", "code_identifier"), ("os.path.join", "code_identifier"), ("MAX_RETRIES", "code_identifier"),
      ("user_id", "code_identifier"), ("getUserName", "code_identifier")]),
    ("Run `npm run build` then call ensure_schema(force=True).",
     [("npm run build", "code_identifier"), ("ensure_schema()", "code_identifier")]),
    # file paths
    ("Set it in /etc/x.conf and src/app/main.py; on Windows it is C:\\x\\y.",
     [("/etc/x.conf", "file_path"), ("src/app/main.py", "file_path"), ("Windows", "product"),
      ("C:\\x\\y", "file_path")]),
    ("Edit ~/.bashrc, ./run.sh, README.md, config.yaml, .env and the Dockerfile.",
     [("~/.bashrc", "file_path"), ("./run.sh", "file_path"), ("README.md", "file_path"),
      ("config.yaml", "file_path"), (".env", "file_path"), ("Dockerfile", "file_path")]),
    # dates
    ("We met on 8 May 2023, again in May 2024 and on 2023-05-08T10:00:00Z.",
     [("8 May 2023", "date"), ("May 2024", "date"), ("2023-05-08T10:00:00Z", "date")]),
    ("Standup on Monday at 9am; the review was last week, 3 years ago, since 2019 and in June.",
     [("Monday", "date"), ("9am", "date"), ("last week", "date"), ("3 years ago", "date"), ("2019", "date"),
      ("June", "date")]),
    ("Due May 8, 2023 or 08/05/2023 at 14:30 or 5 p.m.",
     [("May 8, 2023", "date"), ("08/05/2023", "date"), ("14:30", "date"), ("5 p.m.", "date")]),
    # quantities
    ("Font 14pt, 3 years of data, 512 MB of RAM, $20 at 20% off.",
     [("14pt", "quantity"), ("3 years", "quantity"), ("512 MB", "quantity"), ("$20", "quantity"),
      ("20%", "quantity")]),
    ("It took 10k tokens on 3 cores for two weeks, 3-5 years, 20 USD.",
     [("10k tokens", "quantity"), ("3 cores", "quantity"), ("two weeks", "quantity"), ("3-5 years", "quantity"),
      ("20 USD", "quantity")]),
    # organisations, products, places (trigger words)
    ("The project uses FastAPI, Postgres and Node.js with Python 3.11.",
     [("FastAPI", "product"), ("Postgres", "product"), ("Node.js", "product"), ("Python 3.11", "product")]),
    ("Bob uses Vim, Emacs and VS Code.",
     [("Bob", "person"), ("Vim", "product"), ("Emacs", "product"), ("VS Code", "product")]),
    ("Carol joined Initech in 2021 and lives in Porto.",
     [("Carol", "person"), ("Initech", "organization"), ("2021", "date"), ("Porto", "place")]),
    ("Caroline moved from Sweden 4 years ago.",
     [("Caroline", "person"), ("Sweden", "place"), ("4 years ago", "date")]),
    # normalisation: case-insensitive dedupe keeps the first spelling and type
    ("Ana met ANA.lopes? No: Ana uses Rust, and ana uses rust; Rust is fast.", [("Ana", "person"), ("Rust", "product")]),
]


@pytest.mark.parametrize("text,expected", ENTITY_TABLE, ids=[t[:40] for t, _ in ENTITY_TABLE])
def test_entities(text, expected):
    assert entities(text) == expected


RELATION_TABLE = [
    ("Ana Lopes works at Acme Corp.", [("Ana Lopes", "works_at", "Acme Corp")]),
    ("Dr. Jean-Luc O'Brien currently works for Globex.", [("Jean-Luc O'Brien", "works_at", "Globex")]),
    ("I met Ana and she said Bob lives in Lisbon.", [("Bob", "lives_in", "Lisbon")]),
    ("Yesterday Ana Lopes moved to Berlin, three weeks ago she was in Paris.", [("Ana Lopes", "lives_in", "Berlin")]),
    ("Ana uses Python, Rust and Go.", [("Ana", "uses", "Python"), ("Ana", "uses", "Rust"), ("Ana", "uses", "Go")]),
    ("Acme Corp uses Kafka.", [("Acme Corp", "uses", "Kafka")]),
    ("Ana Lopes prefers Neovim.", [("Ana Lopes", "prefers", "Neovim")]),
    ("Carol really loves Go.", [("Carol", "likes", "Go")]),
    ("- Bob prefers Rust", [("Bob", "prefers", "Rust")]),
    # the list continues only through mentions of the target's type
    ("Bob works at Initech and Carol lives in Porto.",
     [("Bob", "works_at", "Initech"), ("Carol", "lives_in", "Porto")]),
    ("Ana works at Acme and Bob said hi.", [("Ana", "works_at", "Acme")]),
    # no pattern between the mentions: no relation
    ("Ana and Bob met at Acme.", []),
    ("Ana Lopes, our designer, works at Acme.", []),
    ("Ana likes Bob's cooking at Acme.", []),
]


@pytest.mark.parametrize("text,expected", RELATION_TABLE, ids=[t[:40] for t, _ in RELATION_TABLE])
def test_relations(text, expected):
    assert relations(text) == expected


@pytest.mark.parametrize("text", [
    "",
    "   \n\t",
    "the user likes coffee and works from home on weekdays.",
    "i prefer tabs over spaces and use vim keybindings.",
    "she works at the bakery and uses vim every day.",
    "remember to water the plants before leaving.",
    "e.g. i.e. and/or 24/7 km/h 3/4 a.k.a.",
    "Coffee is great.",
    "User prefers dark mode in the editor.",
    "The meeting went well. Thanks!",
    "I think so. Maybe later.",
])
def test_no_false_positives(text):
    assert extract(text) == ((), ())


def test_types_are_the_documented_values():
    assert extract("Ana Lopes works at Acme Corp.") == (
        (Entity("Ana Lopes", "person"), Entity("Acme Corp", "organization")),
        (Relation("Ana Lopes", "works_at", "Acme Corp"),),
    )


def test_deterministic_and_pure():
    text = ("Ana Lopes works at Acme Corp and uses FastAPI, Postgres and Node.js since 2021. "
            "She lives in Lisbon, mails ana@example.com and edits src/app/main.py at 14pt on Monday.")
    first = extract(text)
    assert all(extract(text) == first for _ in range(20))
    assert isinstance(first, tuple) and isinstance(first[0], tuple) and isinstance(first[1], tuple)
    # The order is the order of first appearance.
    names = [e.name for e in first[0]]
    assert names == sorted(names, key=text.index)


def test_capped_at_32_entities_and_relations_only_between_kept_ones():
    names = [f"Ana{'x' * i}" for i in range(40)]
    text = " ".join(f"{n} works at Acme{chr(97 + i % 26)}{i // 26}." for i, n in enumerate(names))
    ents, rels = extract(text)
    assert len(ents) == MAX_ENTITIES
    kept = {e.name for e in ents}
    assert rels and all(r.source in kept and r.target in kept for r in rels)
    assert len(rels) == MAX_ENTITIES // 2


def test_long_and_pathological_texts_are_fast():
    import time

    texts = [("Ana Lopes works at Acme Corp and uses Python, Rust and Go. " * 600)[:32000],
             "A" * 32000, "a_" * 16000, "x." * 16000, "Aa Aa Aa Aa, " * 2600, "a/" * 16000, "1 " * 16000]
    for text in texts:
        started = time.perf_counter()
        extract(text)
        assert time.perf_counter() - started < 2.0, text[:20]
