"""Offline fact extraction (pure): what is kept, what is dropped, sentence splitting, speakers, dedup."""

from __future__ import annotations

import pytest

from domain.events import ChatMessage, Entity
from domain.extraction import OfflineExtractor, categorize, extract_facts, split_sentences


def user(*contents: str) -> list[ChatMessage]:
    return [ChatMessage("user", c) for c in contents]


def texts(messages) -> list[str]:
    return [f.text for f in extract_facts(messages)]


@pytest.mark.parametrize("content", [
    "Hi there!", "hello", "Thanks!", "Thank you so much, Melanie!", "ok", "lol", "haha", "Sounds good",
    "ok lol", "Good morning!", "👍", "That's awesome!", "You're so brave.", "What do you do for work?",
    "Do you like Python?", "Yes.", "It was fun.",
])
def test_greetings_filler_questions_and_short_sentences_are_dropped(content):
    assert extract_facts(user(content)) == []


@pytest.mark.parametrize("content, category", [
    ("I prefer dark mode in my editor.", "preference"),
    ("I'm vegan.", "preference"),
    ("We decided to use Postgres 16 for the event store.", "decision"),
    ("Always run release_build.sh before tagging a release.", "instruction"),
    ("Never push directly to main.", "instruction"),
    ("I'm going to visit my parents next week.", "plan"),
    ("I went to a LGBTQ support group yesterday.", "event"),
    ("My sister Ana is a nurse.", "personal"),
    ("The API gateway listens on port 8080.", "technical"),
])
def test_statements_are_kept_with_their_category(content, category):
    [fact] = extract_facts(user(content))
    assert fact.text == content
    assert category in fact.categories
    assert fact.message_indexes == (0,)
    assert 0 < fact.importance <= 1


def test_a_greeting_and_a_question_around_a_statement_leave_the_statement():
    assert texts(user("Hey Mel! I adopted a puppy last week. How are you?")) == ["I adopted a puppy last week."]
    assert texts(user("Hey Mel, I adopted a puppy last week.")) == ["I adopted a puppy last week."]
    assert texts(user("Oh, we decided to ship on Fridays.")) == ["We decided to ship on Fridays."]


def test_a_tag_question_is_a_statement():
    assert texts(user("I moved to Berlin in 2021, you know?")) == ["I moved to Berlin in 2021."]


def test_assistant_system_and_tool_messages_are_not_facts_unless_asked():
    messages = [ChatMessage("system", "You are a helpful assistant for the Acme team."),
                ChatMessage("assistant", "The deploy script lives in scripts/deploy.sh."),
                ChatMessage("tool", "Build 512 passed in 3.5 minutes."),
                ChatMessage("user", "I work at Acme Corp as a backend engineer.")]
    facts = extract_facts(messages)
    assert [(f.text, f.message_indexes) for f in facts] == [("I work at Acme Corp as a backend engineer.", (3,))]
    wide = extract_facts(messages, roles=("user", "assistant"))
    assert [f.message_indexes for f in wide] == [(1,), (3,)]


def test_sentences_do_not_split_inside_file_names_decimals_urls_and_abbreviations():
    text = ("Run release_build.sh before tagging. It takes 3.5 minutes, e.g. on Dr. Smith's laptop. "
            "Docs are at https://example.com/docs/v1.2 and in src/app.py! Then J. Smith signs it.")
    assert split_sentences(text) == [
        "Run release_build.sh before tagging.",
        "It takes 3.5 minutes, e.g. on Dr. Smith's laptop.",
        "Docs are at https://example.com/docs/v1.2 and in src/app.py!",
        "Then J. Smith signs it.",
    ]


def test_lines_bullets_and_code_blocks():
    text = "Our rules:\n- Use tabs in Makefile\n2. Keep commits small\n```\nx = 1. y = 2.\n```\nThat is all"
    assert split_sentences(text) == ["Our rules:", "Use tabs in Makefile", "Keep commits small", "That is all"]


def test_abbreviations_that_can_end_a_sentence():
    assert split_sentences("I like apples, pears etc. My sister likes none. I said no. See fig. 3 here.") == [
        "I like apples, pears etc.", "My sister likes none.", "I said no.", "See fig. 3 here."]


def test_a_short_dependent_sentence_is_merged_into_the_fact_before_it():
    assert texts(user("I went to the LGBTQ support group yesterday. It was so powerful.")) == [
        "I went to the LGBTQ support group yesterday. It was so powerful."]
    assert texts(user("I adopted a puppy last week. His name is Max.")) == [
        "I adopted a puppy last week. His name is Max."]
    # Not after a dropped sentence, and not a long one: those stand alone (or go).
    assert texts(user("Thanks! It was fun.")) == []
    long_one = "It is the only tool that formats our Terraform files the way the platform team wants them."
    assert texts(user("We use tflint daily.", long_one)) == ["We use tflint daily.", long_one]
    # In one message they are one fact all the same (one fact per message).
    assert texts(user(f"We use tflint daily. {long_one}")) == [f"We use tflint daily. {long_one}"]


def test_speaker_prefixed_messages_keep_the_prefix_and_the_speaker_entity():
    messages = user("Caroline: Hi Melanie! I went to a LGBTQ support group yesterday. It was powerful.",
                    "Melanie: That's awesome, Caroline! I painted a sunset with my kids last weekend.",
                    "Melanie: lol", "Note: the deploy runs at 5pm every Friday.")
    facts = extract_facts(messages)
    assert [f.text for f in facts] == [
        "Caroline: I went to a LGBTQ support group yesterday. It was powerful.",
        "Melanie: I painted a sunset with my kids last weekend.",
        "Note: the deploy runs at 5pm every Friday.",
    ]
    assert facts[0].entities[0] == Entity("Caroline", "person")
    assert facts[1].entities[0] == Entity("Melanie", "person")
    assert all(e.name != "Note" for e in facts[2].entities)  # a label, not a speaker
    assert "event" in facts[0].categories and "personal" in facts[1].categories


def test_identical_facts_are_kept_once_with_every_message_index():
    messages = [ChatMessage("user", "I prefer dark mode."), ChatMessage("assistant", "Noted."),
                ChatMessage("user", "i  prefer DARK mode"), ChatMessage("user", "Caroline: I prefer dark mode.")]
    facts = extract_facts(messages)
    assert [(f.text, f.message_indexes) for f in facts] == [
        ("I prefer dark mode.", (0, 2)), ("Caroline: I prefer dark mode.", (3,))]


def test_text_is_whitespace_normalised_and_entities_come_from_the_shared_extractor():
    [fact] = extract_facts(user("My  sister Ana\tlives in   Lisbon."))
    assert fact.text == "My sister Ana lives in Lisbon."
    assert Entity("Ana", "person") in fact.entities and Entity("Lisbon", "place") in fact.entities
    assert [(r.source, r.type, r.target) for r in fact.relations] == [("Ana", "lives_in", "Lisbon")]


def test_deterministic():
    messages = user("Caroline: I moved to Berlin in 2021. We decided to use Rust. Always write tests first!")
    assert extract_facts(messages) == extract_facts(messages)


def test_categorize_orders_categories():
    assert categorize("From now on we decided to always use Python") == ("decision", "instruction", "technical")
    assert categorize("The sky was grey") == ()


async def test_offline_extractor_port():
    extractor = OfflineExtractor()
    assert extractor.name == "offline"
    facts = await extractor.extract(user("ok", "I live in Porto with my two cats."))
    assert [f.text for f in facts] == ["I live in Porto with my two cats."]


def test_one_fact_per_message_and_a_long_message_splits_at_about_three_sentences():
    assert texts(user("Caroline: I went to a support group yesterday. It was powerful. I also painted a lake.")) == [
        "Caroline: I went to a support group yesterday. It was powerful. I also painted a lake."]
    long_message = ("Jon: I lost my job at the bank. I decided to open a dance studio. I found a space downtown. "
                    "My friends helped me paint it. The opening is on June 5. I invited my whole family.")
    facts = extract_facts(user(long_message))
    assert [f.text for f in facts] == [
        "Jon: I lost my job at the bank. I decided to open a dance studio. I found a space downtown.",
        "Jon: My friends helped me paint it. The opening is on June 5. I invited my whole family."]
    assert all(f.message_indexes == (0,) for f in facts)
    # Five kept sentences stay one fact.
    five = "I adopted a dog. I named him Max. I walk him at 6am. I love Berlin parks. I bought him a red collar."
    assert texts(user(five)) == [five]


@pytest.mark.parametrize("content", [
    "Jon: We got this!", "Maria: Long time no talk!", "Andrew: Thanks for that reminder.",
    "Caroline: I 100% agree, Mel.", "Melanie: No doubts, Caroline.", "Caroline: Absolutely, Caroline!",
    "Melanie: Thanks, Caroline, for letting me join your journey.", "Gina: Don't quit, Jon!",
    "Nate: I'll definitely check it out.", "Audrey: That trail looks nice!", "John: Your words are really motivating.",
    "Andrew: Always great chatting with you!", "Joanna: Let me know if you like it!",
])
def test_small_talk_is_dropped_even_with_the_speaker_and_the_addressee_named(content):
    # The speaker prefix and names used as vocatives ("Mel", "Caroline") name nothing.
    assert extract_facts(user(content, "Melanie: hi", "Caroline: hi", "Jon: hi")) == []


def test_vocatives_are_cut_and_thanks_leave_no_fragment():
    messages = user("Caroline: I adopted a puppy last week, Mel!", "Melanie: Mel, Caroline, that is a joke.",
                    "Melanie: Thanks for asking, I went to Paris with my kids last week.",
                    "Caroline: I love Paris, France.")
    assert texts(messages) == ["Caroline: I adopted a puppy last week!",
                               "Melanie: I went to Paris with my kids last week.",
                               "Caroline: I love Paris, France."]  # France is no addressee


def test_an_image_caption_is_kept_only_with_a_kept_sentence_of_its_message():
    assert texts(user("Caroline: Wow! [image: a photo of a bookcase filled with books]")) == []
    assert texts(user("Caroline: I built this bookcase for my kids last weekend. "
                      "[image: a photo of a bookcase filled with books]")) == [
        "Caroline: I built this bookcase for my kids last weekend. [image: a photo of a bookcase filled with books]"]


def test_a_statement_before_a_trailing_question_and_a_concrete_proposal_are_kept():
    assert texts(user("Nate: Sure thing! I can give it to you tomorrow, how does that sound?")) == [
        "Nate: I can give it to you tomorrow."]
    assert texts(user("Tim: The Hobbit is great, but have you read that other popular fantasy series?")) == [
        "Tim: The Hobbit is great."]
    proposal = "Andrew: How about reducing our carbon footprint by biking or using public transport?"
    assert texts(user(proposal)) == [proposal]
    assert texts(user("Tim: Have you read Harry Potter?")) == ["Tim: Have you read Harry Potter?"]
    # Questions that propose nothing concrete still go.
    assert texts(user("Caroline: Wow! Did you see that band?", "Maria: What about it?")) == []


def test_a_remark_about_the_other_speaker_that_says_something_is_kept():
    assert texts(user("Melanie: You've come a long way since your transition…")) == [
        "Melanie: You've come a long way since your transition…"]
    assert texts(user("Melanie: You're so brave!")) == []
