"""The CLI's help is its manual: every command and subcommand has a summary, a description
and examples; the top level lists the commands and the exit codes; bad usage exits 2 and
names the problem. Commands are discovered from the parser, so a new one is covered too."""

from __future__ import annotations

import argparse
import re

import pytest

from cli.main import main, parser
from tests.conftest import REPO

CONTRACT = {("up",), ("down",), ("status",), ("infra",), ("infra", "up"), ("infra", "down"), ("infra", "status"),
            ("replay",), ("projector",), ("worker",), ("dlq",), ("dlq", "list"), ("dlq", "retry"), ("mcp",)}
# Commands that print results: each takes --json.
PRINT_RESULTS = {("up",), ("down",), ("status",), ("infra", "up"), ("infra", "down"), ("infra", "status"),
                 ("replay",), ("worker",), ("dlq", "list"), ("dlq", "retry")}


def _subcommands(p: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield path + (name,), child
                yield from _subcommands(child, path + (name,))


COMMANDS = dict(_subcommands(parser()))


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out, err = capsys.readouterr()
    return exited.value.code, out, err


def test_every_contract_command_is_there():
    assert CONTRACT <= set(COMMANDS), f"missing: {sorted(CONTRACT - set(COMMANDS))}"


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_help_has_a_summary_a_description_and_examples(capsys, path):
    code, out, err = run(capsys, [*path, "--help"])
    assert code == 0, err
    assert out.startswith(f"usage: recallstack {' '.join(path)}")
    summary = out.split("\n\n")[1]
    assert summary.strip() and summary.rstrip().endswith("."), out  # "Start the whole local stack ...."
    assert "\nExamples:\n" in out
    examples = out.split("\nExamples:\n", 1)[1].split("\n\n", 1)[0]
    assert all(line.startswith("  ") for line in examples.splitlines())
    assert f"recallstack {' '.join(path)}" in examples  # the examples show this very command


@pytest.mark.parametrize("path", sorted(PRINT_RESULTS), ids=" ".join)
def test_commands_that_print_results_take_json(path):
    options = {option for action in COMMANDS[path]._actions for option in action.option_strings}
    assert "--json" in options


def test_top_level_help_lists_commands_and_exit_codes(capsys):
    code, out, _ = run(capsys, ["--help"])
    assert code == 0
    for (name,) in [p for p in COMMANDS if len(p) == 1]:
        assert re.search(rf"^    {name}\s+\S", out, re.M), f"{name} is not listed with its summary"
    exit_codes = out.split("Exit codes:\n", 1)[1]
    for code_ in ("0", "1", "2", "3", "130"):
        assert re.search(rf"^  {code_}\s+\w", exit_codes, re.M), f"exit code {code_} is not documented"
    assert "Examples:" in out and "--json" in out


def test_version(capsys):
    code, out, _ = run(capsys, ["--version"])
    assert code == 0 and out.startswith("recallstack ")


@pytest.mark.parametrize("argv, problem", [
    ([], "required: COMMAND"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["status", "--bogus"], "unrecognized arguments: --bogus"),
    (["infra"], "required: ACTION"),
    (["infra", "restart"], "invalid choice: 'restart'"),
    (["infra", "up", "--only", "kafka,mysql"], "unknown server(s) mysql"),
    (["replay"], "required: --projection"),
    (["replay", "--projection", "nope"], "unknown projection 'nope'"),
    (["projector"], "required: NAME"),
    (["projector", "elastic"], "unknown projection 'elastic'"),
    (["dlq"], "required: ACTION"),
    (["dlq", "retry"], "required: --projection"),
    (["dlq", "list", "--projection", "x"], "unknown projection 'x'"),
    (["up", "--detach", "now"], "unrecognized arguments: now"),
])
def test_bad_usage_exits_2_naming_the_problem(capsys, argv, problem):
    code, out, err = run(capsys, argv)
    assert code == 2
    assert out == ""
    assert problem in err and "usage: recallstack" in err, err


def test_projection_aliases_are_accepted():
    args = parser().parse_args(["replay", "--projection", "graph"])
    assert args.projection == "neo4j"
    assert parser().parse_args(["dlq", "retry", "--projection", "pg"]).projection == "postgres"
    assert parser().parse_args(["projector", "cache"]).name == "redis"
    assert parser().parse_args(["infra", "up", "--only", "kafka, redis"]).only == ("kafka", "redis")


def test_the_cli_reference_covers_every_command_and_exit_code():
    readme = (REPO / "docs" / "cli.md").read_text()
    section = readme.split("\n## CLI\n", 1)[1].split("\n## ", 1)[0]
    for path in COMMANDS:
        assert f"recallstack {' '.join(path)}" in section or (
            len(path) == 2 and re.search(rf"recallstack {path[0]} [\w|]*{path[1]}", section)), path
    for code in ("0", "1", "2", "3", "130"):
        assert re.search(rf"\|\s*{code}\s*\|", section), f"exit code {code} missing from docs/cli.md"
    assert "--json" in section
