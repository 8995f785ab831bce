"""Offline reconciliation (pure): NONE / UPDATE / DELETE / ADD at and around the thresholds, batch dedup."""

from __future__ import annotations

import numpy as np
import pytest

from domain.intelligence import Candidate, Fact, ReconciliationPolicy
from domain.reconciliation import OfflineReconciler, reconcile, reconcile_batch

POLICY = ReconciliationPolicy(duplicate_at=0.90, related_at=0.75)


def decide(fact: str, *candidates: tuple[str, str, float]):
    return reconcile(Fact(fact), [Candidate(i, t, s) for i, t, s in candidates], POLICY)


def test_no_candidate_is_add():
    d = decide("I live in Lisbon.")
    assert (d.action, d.memory_id, d.reason, d.new_text) == ("ADD", None, "no similar memory", "I live in Lisbon.")


@pytest.mark.parametrize("similarity, action", [(0.93, "NONE"), (0.90, "NONE"), (0.8999, "ADD"), (0.75, "ADD"),
                                                (0.7499, "ADD")])
def test_near_duplicate_threshold(similarity, action):
    # Different words, so below duplicate_at this is only "related": ADD.
    d = decide("I really enjoy hiking in the mountains.", ("m1", "Hiking trips are my favourite weekends.", similarity))
    assert d.action == action
    if action == "NONE":
        assert d.memory_id == "m1" and d.reason == f"near-duplicate of m1 (cosine {similarity:.2f})"


def test_the_best_candidate_decides_the_duplicate_and_the_reason_names_it():
    d = decide("I prefer dark mode.", ("m1", "I like light themes.", 0.80), ("m2", "I prefer dark mode!", 0.97))
    assert (d.action, d.memory_id, d.reason) == ("NONE", "m2", "near-duplicate of m2 (cosine 0.97)")


def test_same_words_in_the_related_band_is_none():
    d = decide("Dark mode is what I prefer.", ("m1", "I prefer dark mode.", 0.80))
    assert (d.action, d.memory_id) == ("NONE", "m1") and d.reason.startswith("same statement as m1")


@pytest.mark.parametrize("fact, old, why", [
    ("I live in Berlin now.", "I live in Lisbon.", "change cue 'now'"),
    ("I moved to Berlin.", "I live in Lisbon.", "change cue 'moved'"),
    ("I switched to Emacs as my code editor.", "I use Vim as my code editor.", "change cue 'switched'"),
    ("The team has 7 engineers.", "The team has 5 engineers.", "value changed"),
    ("Ana's birthday is May 5.", "Ana's birthday is May 3.", "value changed"),
    ("I live in Berlin.", "I live in Lisbon.", "value changed"),
    ("My cat is called Mia.", "My cat is called Luna.", "value changed"),
    ("I work at Meta.", "I work at Google as an engineer.", "value changed"),
    ("I don't like sushi.", "I like sushi.", "negation changed"),
    ("I have a dog named Rex who loves the beach.", "I have a dog named Rex.", "adds detail"),
])
def test_update_when_the_fact_is_a_newer_version(fact, old, why):
    d = decide(fact, ("m1", old, 0.82))
    assert (d.action, d.memory_id, d.new_text) == ("UPDATE", "m1", fact)
    assert d.reason == f"newer version of m1 (cosine 0.82): {why}"


def test_update_at_related_at_but_not_below():
    assert decide("I live in Berlin now.", ("m1", "I live in Lisbon.", 0.75)).action == "UPDATE"
    d = decide("I live in Berlin now.", ("m1", "I live in Lisbon.", 0.7499))
    assert (d.action, d.reason) == ("ADD", "new: closest m1 (cosine 0.75)")


def test_a_contradiction_is_not_a_duplicate_even_above_duplicate_at():
    # Embeddings barely see "not" or a changed number: the cues decide.
    assert decide("I don't like sushi.", ("m1", "I like sushi.", 0.95)).action == "UPDATE"
    assert decide("The team has 7 engineers.", ("m1", "The team has 5 engineers.", 0.96)).action == "UPDATE"
    assert decide("I no longer drink coffee.", ("m1", "I drink coffee.", 0.94)).action == "DELETE"
    # ... unless another near-duplicate says the same already.
    d = decide("I don't drink coffee anymore.", ("m1", "I drink coffee.", 0.95),
               ("m2", "I do not drink coffee any more.", 0.93))
    assert (d.action, d.memory_id) == ("NONE", "m2")


@pytest.mark.parametrize("fact, old", [
    ("I no longer drink coffee.", "I drink coffee every morning."),
    ("I don't play tennis anymore.", "I play tennis on Sundays."),
    ("Forget that I like pizza.", "I like pizza."),
    ("I quit my job at Google.", "I work at Google."),
])
def test_delete_when_the_fact_retracts_without_a_new_value(fact, old):
    d = decide(fact, ("m1", old, 0.84))
    assert (d.action, d.memory_id, d.reason) == ("DELETE", "m1", "retracts m1 (cosine 0.84)")


def test_a_retraction_with_a_new_value_is_an_update():
    fact = "I no longer use Vim as my code editor, I switched to Emacs."
    d = decide(fact, ("m1", "I use Vim as my code editor.", 0.8))
    assert (d.action, d.memory_id, d.new_text) == ("UPDATE", "m1", fact)


def test_a_retraction_of_nothing_related_is_added():
    assert decide("I no longer drink coffee.", ("m1", "I drink coffee.", 0.6)).action == "ADD"


def test_related_but_different_subject_is_add():
    d = decide("I love Berlin's museums.", ("m1", "I moved to Berlin.", 0.80))
    assert (d.action, d.reason) == ("ADD", "related to m1 (cosine 0.80) but says something else")
    # A new name replaces an old one only in a one-value slot and the same frame: these accumulate.
    assert decide("My cat is called Luna.", ("m1", "My dog is called Rex.", 0.78)).action == "ADD"
    assert decide("I like Rust.", ("m1", "I like Python.", 0.86)).action == "ADD"
    assert decide("We use Kafka for events.", ("m1", "We use Redis for caching.", 0.8)).action == "ADD"
    assert decide("I enjoy jazz concerts.", ("m1", "I went to a rock festival in 2019.", 0.77)).action == "ADD"


def test_nan_similarities_are_ignored():
    assert decide("I live in Lisbon.", ("m1", "I live in Lisbon.", float("nan"))).action == "ADD"


def test_policy_validation():
    with pytest.raises(ValueError):
        ReconciliationPolicy(duplicate_at=0.7, related_at=0.8)


def test_batch_dedups_against_earlier_facts_of_the_conversation():
    facts = [Fact("I live in Lisbon."), Fact("Lisbon is where I live."), Fact("I like jazz."), Fact("I live in lisbon")]
    vectors = np.array([[1.0, 0.0, 0.0], [0.95, np.sqrt(1 - 0.95 ** 2), 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    decisions = reconcile_batch(facts, [[], [], [], []], POLICY, vectors)
    assert [d.action for d in decisions] == ["ADD", "NONE", "ADD", "NONE"]
    assert decisions[1].reason == "repeats fact #0 of this conversation (cosine 0.95)"
    assert decisions[1].memory_id is None
    assert decisions[3].reason == "repeats fact #0 of this conversation"  # the same text, whatever the vector


def test_batch_threshold_is_duplicate_at_and_zero_vectors_match_nothing():
    facts = [Fact("a b c d"), Fact("e f g h"), Fact("i j k l")]
    just_below = np.array([[1.0, 0.0], [0.8999, np.sqrt(1 - 0.8999 ** 2)], [0.0, 0.0]])
    assert [d.action for d in reconcile_batch(facts, [[], [], []], POLICY, just_below)] == ["ADD", "ADD", "ADD"]
    at = np.array([[1.0, 0.0], [0.9, np.sqrt(1 - 0.81)], [0.0, 0.0]])
    assert [d.action for d in reconcile_batch(facts, [[], [], []], POLICY, at)] == ["ADD", "NONE", "ADD"]


def test_batch_a_deleted_memory_is_no_candidate_of_later_facts():
    old = Candidate("m1", "I drink coffee every morning.", 0.85)
    decisions = reconcile_batch([Fact("I no longer drink coffee."), Fact("I drink coffee with oat milk.")],
                                [[old], [old]], POLICY)
    assert [(d.action, d.memory_id) for d in decisions] == [("DELETE", "m1"), ("ADD", None)]


def test_batch_checks_its_input():
    with pytest.raises(ValueError):
        reconcile_batch([Fact("x")], [], POLICY)
    with pytest.raises(ValueError):
        reconcile_batch([Fact("x")], [[]], POLICY, np.zeros((2, 3)))


async def test_offline_reconciler_port():
    reconciler = OfflineReconciler(POLICY)
    decisions = await reconciler.decide([Fact("I live in Berlin now."), Fact("I like tea.")],
                                        [[Candidate("m1", "I live in Lisbon.", 0.8)], []])
    assert [(d.action, d.memory_id) for d in decisions] == [("UPDATE", "m1"), ("ADD", None)]
    assert OfflineReconciler().policy == ReconciliationPolicy()


def test_another_speakers_statement_is_about_someone_else():
    d = decide("Melanie: I painted a sunset.", ("m1", "Caroline: I painted a sunset.", 0.95),
               ("m2", "Melanie: I like painting.", 0.70))
    assert (d.action, d.reason) == ("ADD", "new: closest m1 (cosine 0.95)")
    assert decide("Melanie: I painted a sunset.", ("m1", "Melanie: I painted a sunset!", 0.95)).action == "NONE"
    assert decide("Melanie: I painted a sunset.", ("m1", "I painted a sunset.", 0.95)).action == "NONE"
    facts = [Fact("Caroline: I painted a sunset."), Fact("Melanie: I painted a sunset.")]
    decisions = reconcile_batch(facts, [[], []], POLICY, np.array([[1.0, 0.0], [1.0, 0.0]]))
    assert [d.action for d in decisions] == ["ADD", "ADD"]


def test_small_talk_does_not_update_small_talk():
    # Too few content words to be the same statement, whatever the negation says.
    d = decide("Melanie: Absolutely, Caroline!", ("m1", "Melanie: No doubts, Caroline.", 0.86))
    assert d.action == "ADD"
    assert decide("I love that!", ("m1", "I don't love that.", 0.85)).action == "ADD"


@pytest.mark.parametrize("fact, old", [
    ("Caroline: I just joined a new LGBTQ activist group last Tues.",
     "Caroline: I went to an LGBTQ conference two days ago."),
    ("Caroline: The pride parade I went to a few weeks ago was amazing.",
     "Caroline: Last week I went to an LGBTQ+ pride parade."),
    ("Nate: I'm participating in the video game tournament again, wish me luck.",
     "Nate: I won my first video game tournament last week."),
    ("Melanie: We went camping at the beach in July.", "Melanie: We went camping in the mountains in June."),
])
def test_events_are_separate_happenings_not_updates(fact, old):
    d = decide(fact, ("m1", old, 0.86))
    assert d.action == "ADD", d.reason


def test_a_change_cue_alone_is_no_update():
    # "now", "new", "again" without a replaced value in the same frame: something else is said.
    assert decide("I now read fantasy novels before bed.", ("m1", "I read mystery novels before bed.", 0.85)).action \
        == "ADD"
    assert decide("My new laptop has a great keyboard.", ("m1", "My laptop has a tiny screen.", 0.8)).action == "ADD"
    # A replaced value in a one-value slot still updates, with or without a cue.
    assert decide("I now live in Porto.", ("m1", "I live in Lisbon.", 0.85)).action == "UPDATE"


@pytest.mark.parametrize("fact, old", [
    ("Jon: I won't quit - your words motivate me to keep going with the dance studio.",
     "Jon: I quit my job to open a dance studio."),
    ("Gina: Don't quit, remember why you started the store.", "Gina: I started my online clothing store."),
    ("Gina: Never give up on your dance studio dreams, Jon!", "Gina: I gave up my job at the bank."),
    ("Maria: My sister no longer lives with us.", "Maria: I live with my sister and her kids."),
])
def test_encouragement_and_third_persons_are_no_retraction(fact, old):
    assert decide(fact, ("m1", old, 0.84)).action != "DELETE"


@pytest.mark.parametrize("fact, old", [
    ("I stopped eating meat.", "I eat meat every day."),
    ("We no longer go hiking on weekends.", "We go hiking on weekends."),
])
def test_first_person_retractions_delete(fact, old):
    assert decide(fact, ("m1", old, 0.84)).action == "DELETE"


def test_the_speaker_and_the_one_spoken_to_are_different_subjects():
    assert decide("Jon: Love how you never give up on your dance studio.",
                  ("m1", "Jon: I won't give up on my dance studio.", 0.88)).action == "ADD"


def test_a_tag_questions_negation_is_no_negation_flip():
    d = decide("Andrew: They really do bring joy to the family, don't they?",
               ("m1", "Andrew: They really bring joy to the family!", 0.92))
    assert (d.action, d.memory_id) == ("NONE", "m1")
