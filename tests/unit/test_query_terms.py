"""What the lexical and graph sources take from a query."""

from __future__ import annotations

import pytest

from domain.query_terms import keywords, names, tsquery_text


@pytest.mark.parametrize("query, expected", [
    ("When did Caroline go to the LGBTQ support group?", ["caroline", "go", "lgbtq", "support", "group"]),
    ("What's the user's favourite editor?", ["user", "favourite", "editor"]),
    ("the the THE", []),
    ("port 8080 or 443", ["port", "8080", "443"]),
])
def test_keywords_are_content_words_once_in_order(query, expected):
    assert keywords(query) == expected


def test_keywords_cannot_carry_tsquery_syntax():
    words = keywords("alpha & !beta | gamma:* <-> (delta) 'eps'")
    assert words == ["alpha", "beta", "gamma", "delta", "eps"]
    assert all(w.isalnum() for w in words)
    assert tsquery_text(words) == " | ".join(words)
    assert tsquery_text([]) is None
    assert tsquery_text(["ok", "x|y"]) == "ok"


@pytest.mark.parametrize("query, expected", [
    ("Who works at Acme Corp with Bob?", ["Acme Corp", "Bob"]),
    ("where is tools/build.sh", ["tools/build.sh"]),
    ("How does getUserName work in my_module?", ["getUserName", "my_module"]),
    ("what did I do last week?", []),
])
def test_names_are_entities_and_identifiers(query, expected):
    assert names(query) == expected


def test_names_are_bounded():
    assert len(names(" ".join(f"Name{i}x" for i in range(20)))) == 6


def test_a_sentence_initial_capital_is_not_a_name():
    assert names("Quick question: when did Caroline go?") == ["Caroline"]
    assert names("Remind me, what does Melanie paint? Thanks") == ["Melanie"]
