"""The words the sparse index keeps for fuzzy matching, and how names are looked up."""

from __future__ import annotations

import pytest

from adapters.neo4j_read_model import _norm
from adapters.sparse_schema import words_analyzer
from domain.index_terms import MAX_WORD, as_prefix, edits, entity_words, identifiers, name_terms


@pytest.mark.parametrize("text, expected", [
    ("Caroline: I don't like it.", []),
    ("runs tools/release_build.sh daily", ["tools/release_build.sh", "release_build.sh"]),
    ("call getUserName() now", ["getusername", "get", "user", "name"]),
    ("ERR_QUOTA_EXCEEDED_42.", ["err_quota_exceeded_42"]),
    ("Müller läuft naïveCode, e-mail ana@x.org", ["naïvecode", "naïve", "code", "e-mail", "ana@x.org"]),
    ("The end. (really.) x.y.", ["x.y"]),
])
def test_identifiers_are_kept_whole_with_their_pieces_and_humps(text, expected):
    assert identifiers(text) == expected


def test_overlong_identifiers_are_left_out():
    assert identifiers("a_" + "x" * MAX_WORD + " ok_go") == ["ok_go"]


@pytest.mark.parametrize("name, expected", [
    ("release_buidl.sh", (["release_buidl.sh"], ["release", "buidl", "sh"])),
    ("Ana Lopes", ([], ["ana", "lopes"])),
    ("getUserNme", (["getusernme"], ["get", "user", "nme"])),
    ("", ([], [])),
])
def test_a_name_is_its_whole_identifiers_and_its_words(name, expected):
    assert name_terms(name) == expected


@pytest.mark.parametrize("name, text", [
    ("release_build.sh", "The nightly build runs tools/release_build.sh on the CI box"),
    ("getUserName", "the bug is in getUserName()"),
    ("Caroline Müller", "Caroline Müller went home"),
])
def test_a_name_is_split_as_the_text_it_should_match(name, text):
    """Wholes among the text's identifiers; words among its words (Tantivy's tokenizer) or humps."""
    wholes, parts = name_terms(name)
    assert set(wholes) <= set(identifiers(text))
    assert set(parts) <= set(words_analyzer().analyze(text)) | set(identifiers(text))


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
