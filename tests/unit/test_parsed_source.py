"""parse_python survives what broke stop 35's CI: garbage whose finalizer parses Python,
collected in the middle of a parse (see tests/unit/parsed_source.py)."""

from __future__ import annotations

import ast
import gc

from tests.conftest import REPO
from tests.unit.parsed_source import parse_python

SOURCE = (REPO / "bootstrap.py").read_text()


class ParsingGarbage:
    """A cycle (so only the collector frees it) whose finalizer parses, like the traceback
    formatting of aiokafka's 'Unclosed AIOKafkaProducer' log does on Python 3.11."""

    finalized = 0

    def __init__(self):
        self.me = self

    def __del__(self):
        ParsingGarbage.finalized += 1
        ast.parse("x = (1 + (2 * (3 - (4 / 5))))")


def test_a_parse_with_parsing_garbage_about_yields_the_tree_and_the_garbage_is_freed_after():
    threshold = gc.get_threshold()
    gc.collect()
    gc.set_threshold(5)  # collect every few allocations, so a collection would fall inside the parse
    try:
        for _ in range(20):
            for _ in range(50):
                ParsingGarbage()
            before = ParsingGarbage.finalized
            tree = parse_python(SOURCE)
            assert ParsingGarbage.finalized == before, "the collector ran during the parse"
            assert any(isinstance(node, ast.FunctionDef) for node in tree.body)
    finally:
        gc.set_threshold(*threshold)
    gc.collect()
    assert ParsingGarbage.finalized >= 1000 - 50, "the garbage was never collected: the collector stayed off"
    assert gc.isenabled()


def test_a_text_parses_as_well_as_a_path():
    assert isinstance(parse_python("import os\n").body[0], ast.Import)
