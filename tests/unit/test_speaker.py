"""Who says a line, and whether a query names them (domain/speaker.py)."""

from __future__ import annotations

from domain.speaker import split_speaker, spoken_by


def test_split_speaker_takes_the_name_before_the_colon():
    assert split_speaker("Caroline: I moved to Sweden") == ("Caroline", "I moved to Sweden")
    assert split_speaker("Note: buy milk") == ("", "Note: buy milk")


def test_a_line_is_spoken_by_a_name_the_query_names_case_aside():
    assert spoken_by("Caroline: I went to a support group", ["Caroline", "LGBTQ"])
    assert spoken_by("Caroline: I went to a support group", ["caroline"])


def test_the_first_name_names_a_speaker_of_several_words():
    assert spoken_by("John Smith: the build is green", ["John"])
    assert spoken_by("John Smith: the build is green", ["John Smith"])
    assert not spoken_by("John Smith: the build is green", ["Smith"])


def test_another_speaker_a_mention_or_no_speaker_is_not_spoken_by():
    assert not spoken_by("Melanie: Caroline went there", ["Caroline"])
    assert not spoken_by("I met Caroline today", ["Caroline"])
    assert not spoken_by("Note: Caroline called", ["Note", "Caroline"])
    assert not spoken_by("Caroline: hi", [])
