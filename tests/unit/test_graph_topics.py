"""What a speaker says of themself about common things becomes `topic` entities and typed
relations (domain/topics.py, domain/entities.extract_with_topics); well-known places are places
(domain/place_names.py); amounts are no graph nodes (projectors/graph_rows.split_times). Pure logic."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from domain.entities import extract, extract_with_topics
from domain.events import Entity, Relation
from domain.place_names import is_place_name
from domain.topics import first_person_topics
from projectors.graph_rows import graph_rows, split_times


def topics(text: str) -> list[tuple[str, str]]:
    return [(t.relation, t.name) for t in first_person_topics(text)]


@pytest.mark.parametrize("text, expected", [
    ("I'm passionate about dancing and it brings me joy", [("likes", "dancing")]),
    ("I just think about my love for dance and fashion.", [("likes", "dance"), ("likes", "fashion")]),
    ("I've been into pottery since I was a kid", [("likes", "pottery")]),
    ("Lost my job as a banker yesterday", [("works_as", "banker")]),
    ("I'm starting a dance studio 'cause I love it", [("started", "dance studio")]),
    ("I opened an online clothing store and it's going well", [("started", "online clothing store")]),
    ("I'm working on my business and some new dance routines", [("has", "business"), ("works_on", "business"),
                                                              ("works_on", "dance routines")]),
    ("Last week, I built a new website for customers", [("made", "website")]),
    ("I signed up for a pottery class on Tuesdays", [("learns", "pottery class")]),
    ("I joined a book club last month", [("member_of", "book club")]),
    ("We went camping in the mountains", [("practices", "camping")]),
    ("I volunteer at the homeless shelter every Friday", [("volunteers_at", "homeless shelter")]),
    ("I went to a tattoo parlor with Sam", [("visited", "tattoo parlor")]),
    ("I took my turtles out, and my dogs like it too", [("has", "turtles"), ("has", "dogs")]),
    ("I saw a flyer at my local pet store", [("has", "pet store")]),
    ("I bought a new camera for the trip", [("owns", "camera")]),
])
def test_first_person_statements_about_things(text, expected):
    assert topics(text) == expected


@pytest.mark.parametrize("text", [
    "I love it!",                                  # a pronoun
    "I made a lot of friends there",               # vague
    "I'd love to join in and share",               # a verb, not a thing
    "I love running the show",                     # a verb with an object: not `running`
    "I love Paris",                                # a name: left to the name patterns
    "I'm learning a ton every day",                # vague
    "I went to a few weeks of training",           # an amount, not a place
    "Thanks, it was all for my dreams",            # not on the list of things one owns
    "I started to feel better",                    # an adjective after a verb
    "You love dancing, and she opened a shop",     # not the speaker
])
def test_no_topic_from_vague_words_verbs_names_or_others(text):
    assert topics(text) == []


def test_the_speaker_is_the_subject_and_a_topic_is_one_lowercase_node():
    entities, relations = extract_with_topics("Jon: I'm passionate about dancing. I love dancing, and my dance studio")
    assert Entity("dancing", "topic") in entities and Entity("dance studio", "topic") in entities
    assert Relation("Jon", "likes", "dancing") in relations
    assert Relation("Jon", "has", "dance studio") in relations
    assert [e for e in entities if e.name.casefold() == "dancing"] == [Entity("dancing", "topic")]


def test_topics_only_for_a_speaker_and_only_in_the_graphs_extraction():
    assert extract_with_topics("I love dancing") == extract("I love dancing")  # no one to relate it to
    names, _ = extract("Jon: I love dancing")
    assert all(e.type != "topic" for e in names)  # queries, matching and reconciliation see names only


@pytest.mark.parametrize("text, place", [
    ("Gina: Been only to Rome once.", "Rome"),
    ("Ana met Bob in Paris.", "Paris"),
    ("Tim said New Zealand was lovely", "New Zealand"),
])
def test_well_known_places_are_places(text, place):
    assert (place, "place") in [(e.name, e.type) for e in extract(text)[0]]


def test_first_names_that_are_also_places_stay_people():
    assert not any(is_place_name(n) for n in ("Georgia", "Virginia", "Jordan", "Sydney", "Austin", "Charlotte"))
    assert ("Georgia", "person") in [(e.name, e.type) for e in extract("Yesterday Georgia said hi")[0]]


def test_amounts_are_no_graph_nodes():
    entities, relations = extract_with_topics("Jon: I spent $20 and 3 days at the dance studio with Ana")
    assert any(e.type == "quantity" for e in entities)
    nodes, kept, times = split_times(entities, relations)
    assert all(e.type != "quantity" for e in nodes)
    mentions, _ = graph_rows("u", "m", nodes, kept, datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert {m["type"] for m in mentions} <= {"person", "topic", "date"}
