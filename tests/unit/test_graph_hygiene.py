"""The offline extractor's graph rules for chat lines and people (issue 23): the speaker of a
`Name: text` line, no interjections, greetings or contractions taken for names, quoted titles
as works, abbreviated weekdays as dates, first-person relations, ties between people, a second
verb keeping its subject. Pure logic."""

from __future__ import annotations

import pytest

from domain.entities import extract
from domain.extraction import split_speaker


def entities(text: str) -> list[tuple[str, str]]:
    return [(e.name, e.type) for e in extract(text)[0]]


def relations(text: str) -> list[tuple[str, str, str]]:
    return [(r.source, r.type, r.target) for r in extract(text)[1]]


@pytest.mark.parametrize("text, expected", [
    # the speaker of a chat line is a person; an interjection or greeting is never part of a name
    ("Caroline: Hey Mel! Good to see you!", [("Caroline", "person"), ("Mel", "person")]),
    ("Melanie: Wow Caroline, that's great!", [("Melanie", "person"), ("Caroline", "person")]),
    ("Congrats Caroline! Bye Melanie, woohoo.", [("Caroline", "person"), ("Melanie", "person")]),
    ("Sure John, bet Max will come.", [("John", "person"), ("Max", "person")]),
    # labels are not speakers
    ("Note: Ana works at Acme.", [("Ana", "person"), ("Acme", "organization")]),
    ("User: prefers tabs", []),
    # 's as "is" is no possessive: no person
    ("Caroline: Life's too short. Art's awesome! Pottery's so relaxing. Guitar's mostly my thing.",
     [("Caroline", "person")]),
    ("Alice's sister came by.", [("Alice", "person")]),
    # quoted Title-Case names are works; quoted speech is not
    ('I loved reading "Charlotte\'s Web" and "Becoming Nicole" by Amy Ellis Nutt.',
     [("Charlotte's Web", "title"), ("Becoming Nicole", "title"), ("Amy Ellis Nutt", "person")]),
    ("Here's one- 'Embracing Identity' is about comfort.", [("Embracing Identity", "title")]),
    ('She said "Thanks for coming!" and left.', []),
    # abbreviated weekdays after a time word are dates
    ("I joined a new group last Tues and went to a reading last Fri.",
     [("last Tues", "date"), ("last Fri", "date")]),
    # a place named after the word for it
    ("A gift from my grandma in my home country, Sweden.", [("Sweden", "place")]),
    ("I'm from Sweden.", [("Sweden", "place")]),
])
def test_entities(text, expected):
    assert entities(text) == expected


@pytest.mark.parametrize("text, expected", [
    # first person: the speaker is the subject
    ("Caroline: I moved to Sweden 4 years ago.", [("Caroline", "lives_in", "Sweden")]),
    ("Caroline: I'm from Sweden and I use Python, Rust and Go.",
     [("Caroline", "from", "Sweden"), ("Caroline", "uses", "Python"), ("Caroline", "uses", "Rust"),
      ("Caroline", "uses", "Go")]),
    ("Melanie: I adopted a puppy named Bailey last week.", [("Melanie", "adopted", "Bailey")]),
    ("Melanie: We just adopted Luna!", [("Melanie", "adopted", "Luna")]),
    # without a speaker, "I" is no one
    ("I moved to Sweden.", []),
    # ties: the speaker's, and a named person's
    ("Melanie: Wow Caroline, my sister Anna adopted a dog named Luna.",
     [("Melanie", "sister", "Anna"), ("Anna", "adopted", "Luna")]),
    ("Caroline: Thanks Mel! Oliver is my friend.", [("Caroline", "friend", "Oliver")]),
    ("Jon: my kids Max and Lily love it", [("Jon", "child", "Max"), ("Jon", "child", "Lily")]),
    ("Jon: my sisters Eva and Rosa, my co-workers Tim and Ann.",
     [("Jon", "sister", "Eva"), ("Jon", "sister", "Rosa"), ("Jon", "coworker", "Tim"), ("Jon", "coworker", "Ann")]),
    ("Ana's boss, Bob, called.", [("Ana", "boss", "Bob")]),
    ("Jon: I walked my puppy, Rex, today.", [("Jon", "dog", "Rex")]),
    ("Ana's boss, Bob, uses Vim.", [("Ana", "boss", "Bob")]),
    ("Ana's mom Rosa lives in Porto.", [("Ana", "mother", "Rosa"), ("Rosa", "lives_in", "Porto")]),
    # a second verb keeps its subject
    ("Ana works at Acme and lives in Lisbon.", [("Ana", "works_at", "Acme"), ("Ana", "lives_in", "Lisbon")]),
    # no tie to the addressee of a vocative
    ("Melanie: Thanks Caroline, my friends loved it.", []),
])
def test_relations(text, expected):
    assert relations(text) == expected


def test_the_conversation_split_and_the_extractor_agree_on_the_speaker():
    assert split_speaker("Caroline: I went") == ("Caroline", "I went")
    assert split_speaker("Summary: it went well") == ("", "Summary: it went well")
    assert entities("Caroline: I went")[0] == ("Caroline", "person")


@pytest.mark.parametrize("text, expected", [
    ("Joanna: I went to Woodhaven, a small town in the Midwest.", [("Joanna", "visited", "Woodhaven")]),
    ("John: check out this pic from one of my trips to New York City!", [("John", "visited", "New York City")]),
    ("Melanie: we got another cat named Bailey too.", [("Melanie", "cat", "Bailey")]),
    ("Andrew: Last Tuesday, my gf, Toby, and I went hiking.", [("Andrew", "girlfriend", "Toby")]),
    ("Ana went to Bob's party.", []),  # a visit is to a place
])
def test_more_relations(text, expected):
    assert relations(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("Maria: I love volunteering! It makes me feel like I'm making a difference.", [("Maria", "person")]),
    ("Joanna: Thanks Nate! I absolutely love DIYs, and I know she does too.",
     [("Joanna", "person"), ("Nate", "person"), ("DIYs", "product")]),
    ("Gina: Go Jon! Anytime Nate! Hang in there.", [("Gina", "person"), ("Jon", "person"), ("Nate", "person")]),
    ("I went to Woodhaven, a small town in the Midwest.", [("Woodhaven", "place"), ("Midwest", "place")]),
])
def test_no_pronouns_or_cheers_in_names(text, expected):
    assert entities(text) == expected


def test_a_name_ending_in_a_company_word_is_an_organization_that_lives_nowhere():
    assert entities("Acme Corp is based in Lisbon") == [("Acme Corp", "organization"), ("Lisbon", "place")]
    assert relations("Acme Corp is based in Lisbon") == [] and relations("Globex Inc moved to Berlin") == []
    assert relations("Bob Marley moved to Berlin") == [("Bob Marley", "lives_in", "Berlin")]
