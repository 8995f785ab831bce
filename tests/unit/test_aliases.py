"""Short forms of a person's name stand for the longer name they begin (issue 23: one node
per entity). Pure logic."""

from domain.aliases import alias_map


def test_a_short_form_stands_for_the_name_it_begins():
    assert alias_map([("Melanie", 54), ("Mel", 58), ("Caroline", 121), ("Caro", 2)]) == {
        "Mel": "Melanie", "Caro": "Caroline"}


def test_the_most_mentioned_wins_when_it_dominates_and_a_tie_is_left_alone():
    assert alias_map([("Mel", 5), ("Melanie", 54), ("Mell", 1)]) == {"Mel": "Melanie"}
    assert alias_map([("Max", 5), ("Maxine", 4), ("Maxwell", 3)]) == {}


def test_chains_resolve_to_the_full_name_and_case_is_ignored():
    assert alias_map([("mel", 1), ("Melanie", 3), ("Melanie Ruiz", 2)]) == {
        "mel": "Melanie Ruiz", "Melanie": "Melanie Ruiz"}


def test_short_or_multi_word_names_are_no_aliases():
    assert alias_map([("Al", 3), ("Alice", 3), ("Ana Lopes", 1), ("Ana Lopesa", 1)]) == {}
    assert alias_map([]) == {}


def test_the_graph_shows_one_entity_per_person():
    from domain.aliases import merge_aliases
    graph = {
        "entities": [{"name": "Caroline", "type": "person", "mentions": 121},
                     {"name": "Mel", "type": "person", "mentions": 58},
                     {"name": "Melanie", "type": "person", "mentions": 54},
                     {"name": "Sweden", "type": "place", "mentions": 1}],
        "relations": [{"source": "Mel", "target": "Sweden", "type": "lives_in", "memory_id": "m1"},
                      {"source": "Mel", "target": "Melanie", "type": "sister", "memory_id": "m2"}],
        "co_mentions": [{"source": "Caroline", "source_type": "person", "target": "Mel", "target_type": "person",
                         "weight": 3},
                        {"source": "Caroline", "source_type": "person", "target": "Melanie",
                         "target_type": "person", "weight": 4},
                        {"source": "Mel", "source_type": "person", "target": "Melanie", "target_type": "person",
                         "weight": 1}],
    }
    merged = merge_aliases(graph)
    assert merged["entities"] == [{"name": "Caroline", "type": "person", "mentions": 121},
                                  {"name": "Melanie", "type": "person", "mentions": 112, "aliases": ["Mel"]},
                                  {"name": "Sweden", "type": "place", "mentions": 1}]
    assert merged["relations"] == [{"source": "Melanie", "target": "Sweden", "type": "lives_in", "memory_id": "m1"}]
    assert merged["co_mentions"] == [{"source": "Caroline", "source_type": "person", "target": "Melanie",
                                      "target_type": "person", "weight": 7}]
    assert merge_aliases({"entities": [], "relations": [], "co_mentions": []}) == {
        "entities": [], "relations": [], "co_mentions": []}


def test_one_node_per_name_whatever_type_each_line_guessed():
    from domain.aliases import merge_aliases
    graph = {
        "entities": [{"name": "Toby", "type": "person", "mentions": 5},
                     {"name": "Toby", "type": "product", "mentions": 1},
                     {"name": "dancing", "type": "topic", "mentions": 3},
                     {"name": "Dancing", "type": "product", "mentions": 1},
                     {"name": "Scout", "type": "title", "mentions": 1},
                     {"name": "Scout", "type": "person", "mentions": 1}],
        "relations": [{"source": "Andrew", "target": "Toby", "type": "dog", "memory_id": "m1"},
                      {"source": "Andrew", "target": "Dancing", "type": "likes", "memory_id": "m2"}],
        "co_mentions": [{"source": "Toby", "source_type": "product", "target": "dancing", "target_type": "topic",
                         "weight": 1},
                        {"source": "Toby", "source_type": "person", "target": "Dancing", "target_type": "product",
                         "weight": 2}],
    }
    merged = merge_aliases(graph)
    assert merged["entities"] == [{"name": "Toby", "type": "person", "mentions": 6},
                                  {"name": "dancing", "type": "topic", "mentions": 4},
                                  {"name": "Scout", "type": "person", "mentions": 2}]  # a tie: person first
    assert [(r["source"], r["target"]) for r in merged["relations"]] == [("Andrew", "Toby"), ("Andrew", "dancing")]
    assert merged["co_mentions"] == [{"source": "Toby", "source_type": "person", "target": "dancing",
                                      "target_type": "topic", "weight": 3}]
