"""The words the sparse index keeps for fuzzy matching, and how names are looked up."""

from __future__ import annotations

import pytest

from adapters.neo4j_read_model import _norm
from domain.index_terms import MAX_WORD, as_prefix, edits, entity_words, name_terms, words


@pytest.mark.parametrize("text, expected", [
    ("Caroline: I don't like it.", ["caroline", "i", "don", "t", "like", "it"]),
    ("runs tools/release_build.sh daily",
     ["runs", "tools/release_build.sh", "release_build.sh", "tools", "release", "build", "sh", "daily"]),
    ("call getUserName() now", ["call", "getusername", "get", "user", "name", "now"]),
    ("ERR_QUOTA_EXCEEDED_42.", ["err_quota_exceeded_42", "err", "quota", "exceeded", "42"]),
    ("Müller läuft naïveCode", ["müller", "läuft", "naïvecode", "naïve", "code"]),
    ("the The THE", ["the"]),
    ("  ... --- ", []),
])
def test_words_are_lower_case_words_and_identifiers_whole_and_split(text, expected):
    assert words(text) == expected


def test_overlong_tokens_are_left_out():
    assert words("x" * (MAX_WORD + 1) + " ok") == ["ok"]


@pytest.mark.parametrize("name, expected", [
    ("release_buidl.sh", (["release_buidl.sh"], ["release", "buidl", "sh"])),
    ("Ana Lopes", ([], ["ana", "lopes"])),
    ("getUserNme", (["getusernme"], ["get", "user", "nme"])),
    ("", ([], [])),
])
def test_a_name_is_its_whole_identifiers_and_its_words(name, expected):
    assert name_terms(name) == expected


def test_a_name_is_split_as_the_text_it_should_match():
    text_words = set(words("The nightly build runs tools/release_build.sh on the CI box"))
    wholes, parts = name_terms("release_build.sh")
    assert set(wholes) <= text_words and set(parts) <= text_words


@pytest.mark.parametrize("term, forgiven, prefix", [
    ("ana", 0, False), ("bob", 0, False), ("lopes", 1, True), ("carolin", 1, True), ("caroline", 2, True),
    ("release_buidl.sh", 2, True), ("mary", 1, False),
])
def test_longer_terms_forgive_more_edits(term, forgiven, prefix):
    assert (edits(term), as_prefix(term)) == (forgiven, prefix)


def test_entity_words_are_the_words_of_names_as_the_graph_keys_them():
    names = ["Ana  Lopes", "ANA", "FastAPI", " New\tYork City "]
    assert entity_words(names) == ["ana", "lopes", "fastapi", "new", "york", "city"]
    assert set(entity_words(names)) == {w for n in names for w in _norm(n).split(" ")}
