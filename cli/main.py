"""`recallstack`: run the local stack, its parts, and operations on it.

Every command has `--help` with examples; the exit codes are in cli/output.py (and in
`recallstack --help`): 0 ok, 1 failed, 2 usage, 3 a dependency unreachable, 130 Ctrl-C.
Commands that print results take --json: one JSON document on stdout, nothing else there.
"""

from __future__ import annotations

import argparse
import os
import sys

from cli import file_commands, key_commands, log_commands, mcp_commands, stack_commands
from cli.configuration import SettingsError, fail as _fail
from cli.help_text import HelpFormatter as _Help, block as _block, command as _command
from cli.output import EXIT_CODES_HELP, FAILED, INTERRUPTED, UNREACHABLE, USAGE, describe, unreachable


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="recallstack", formatter_class=_Help,
        description=_block("""
            Self-hosted, event-sourced long-term memory for AI agents.

            Runs the local stack (Kafka, Postgres+pgvector, Neo4j, Redis, the projectors, the
            command and query APIs and the gateway, all on 127.0.0.1) with its data under
            $RECALLSTACK_HOME (default ~/.recallstack), and operates on it. Configuration comes
            from RECALLSTACK_* environment variables. `recallstack COMMAND --help` shows each
            command's options, examples and exit codes.
        """),
        epilog=_block("""
            Examples:
              recallstack up --detach                 start everything, return once all answer
              recallstack status --json | jq '.processes[] | select(.ready | not) | .name'
              recallstack dlq list
              recallstack replay --projection pg
              recallstack down

            Output:
              Results go to stdout: a table or, with --json, exactly one JSON document (indented
              on a terminal, one line when piped). Progress, messages and errors go to stderr:
              animated when stderr is a terminal, one plain line per step otherwise (CI logs),
              with or without --json; `2>/dev/null` silences them.
        """) + "\n\n" + EXIT_CODES_HELP)
    from importlib.metadata import PackageNotFoundError, version

    try:
        p.add_argument("--version", action="version", version=f"recallstack {version('recallstack')}")
    except PackageNotFoundError:
        pass
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    stack_commands.register(sub, _command)  # up, down, status, infra
    log_commands.register(sub, _command)  # projector, worker, replay, dlq
    key_commands.register(sub, _command)  # keys
    file_commands.register(sub, _command)  # export, import

    from cli.backup import register as register_backup  # backup, restore, digest

    register_backup(sub, _command)

    from cli.erasure import register as register_erasure  # users erase, keystore backup|restore

    register_erasure(sub, _command)
    mcp_commands.register(sub, _command)  # mcp, mcp install, mcp doctor
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from infra.process import StartError

    try:
        return args.func(args)
    except KeyboardInterrupt:
        return _fail(args, INTERRUPTED, "interrupted", "interrupted")
    except StartError as exc:
        return _fail(args, FAILED, "failed", str(exc))
    except SettingsError as exc:
        return _fail(args, USAGE, "invalid_settings", str(exc))
    except BrokenPipeError:  # `recallstack status --json | head -1`: the reader went away
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILED
    except Exception as exc:
        cause = unreachable(exc)
        if cause is None:
            raise  # a bug: the traceback says where (exit code 1)
        return _fail(args, UNREACHABLE, "unreachable",
                     f"a dependency is unreachable: {describe(cause)} "
                     "(is the stack up? `recallstack status` shows what runs)")


if __name__ == "__main__":
    sys.exit(main())
