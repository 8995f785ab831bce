"""The CLI's help: descriptions and examples as written, and one way to declare a command."""

from __future__ import annotations

import argparse
import textwrap


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (examples keep their lines); names up to 20 wide."""

    def __init__(self, prog: str):
        super().__init__(prog, max_help_position=30)

    def add_argument(self, action):
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):  # argparse forgets their extra indent
            self._action_max_length = max(self._action_max_length,
                                          self._current_indent + 2 + max(map(len, action.choices)))


def block(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def command(sub, name: str, summary: str, description: str, examples: str, exit_codes: str = "",
             json_output: str = "") -> argparse.ArgumentParser:
    """A (sub)command whose --help has the summary, a description, Examples: and its exit codes."""
    epilog = "Examples:\n" + textwrap.indent(block(examples), "  ")
    if exit_codes:
        epilog += "\n\nExit codes:\n" + textwrap.indent(block(exit_codes), "  ")
    command = sub.add_parser(name, help=summary, description=f"{summary[0].upper()}{summary[1:]}.\n\n{block(description)}",
                             epilog=epilog, formatter_class=HelpFormatter)
    if json_output:
        command.add_argument("--json", action="store_true",
                             help=f"print one JSON document on stdout ({json_output}); progress and messages stay on "
                                  "stderr")
    return command
