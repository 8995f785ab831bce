"""`recallstack mcp`: the MCP server on stdio, and setting clients up for it:
`mcp install` (cli/mcp_install.py) writes a client's configuration with a fresh key,
`mcp doctor` (cli/mcp_doctor.py) checks the path from that configuration to a round trip."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from pathlib import Path

from cli.configuration import fail as _fail
from cli.output import FAILED, OK, UNREACHABLE, USAGE, console, emit_json

CLIENT_HELP = "cursor, claude-code, claude-desktop or vscode"


def cmd_mcp(args) -> int:
    if getattr(args, "action", None):
        return args.run(args)
    from cli.configuration import SettingsError
    from mcp_server.server import McpConfig, run_stdio

    # stdout carries the protocol: everything else (logs, errors) goes to stderr.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = McpConfig.from_env(base_url=args.url)
    except ValueError as exc:  # a RECALLSTACK_* setting that does not fit: named, exit 2
        raise SettingsError(str(exc)) from None
    run_stdio(config)
    return OK


def _desktop_folders() -> dict[str, str]:
    """Where this platform's desktop apps keep settings when not in the default place (Claude
    Desktop and VS Code follow them): the OS's variables, no setting of recallstack's."""
    return {name: os.environ[name] for name in ("XDG_CONFIG_HOME", "APPDATA") if os.environ.get(name)}


def _target(args, client: str | None = None, scope: str | None = None):
    from cli import mcp_config

    target = mcp_config.target(client or args.client, scope or args.scope, home=Path.home(),
                               project=Path(args.project_dir).resolve(), platform=sys.platform,
                               env=_desktop_folders())
    if args.config:
        target = mcp_config.Target(target.client, target.scope, Path(args.config).expanduser(), target.servers_at)
    return target


def _base_url(args, cfg) -> str:
    return (args.url or (cfg.gateway_url if cfg else "http://127.0.0.1:8080")).rstrip("/")


def _issue_key(args, cfg, user: str) -> tuple[str | None, dict]:
    """(the key for the entry, what to report of it): --key as given, none when auth is off,
    else a new key of the user issued on this machine (cli/keys.py)."""
    if args.key:
        return args.key, {"key": "given"}
    if cfg is not None and not cfg.auth:
        return None, {"key": "none (authentication is off)"}
    from cli import keys

    issued = asyncio.run(keys.create(cfg, user, [args.key_scope], name=f"mcp {args.client}"))
    return issued.secret, {"key_id": issued.key_id, "key_prefix": issued.prefix, "key_scopes": list(issued.scopes)}


def cmd_install(args) -> int:
    from cli import mcp_config, mcp_install
    from cli.configuration import load_settings

    try:
        target = _target(args)
        transport = args.transport or mcp_config.BEST_TRANSPORT[args.client]
        cfg = None if (args.dry_run or args.key) and args.url else load_settings()
        user = args.user or getpass.getuser()
        placeholder = None if cfg is not None and not cfg.auth else args.key or mcp_install.PLACEHOLDER_KEY
        connection = mcp_config.Connection(_base_url(args, cfg), placeholder, user, args.client,
                                           mcp_install.recallstack_command())
        planned = mcp_install.plan(target, args.name, transport, connection)  # refuses a bad file before any key
    except (ValueError, mcp_config.ConfigRefused) as exc:
        return _fail(args, FAILED if isinstance(exc, mcp_config.ConfigRefused) else USAGE, "refused", str(exc))
    result = {"client": args.client, "scope": target.scope, "path": str(target.path), "server_name": args.name,
              "transport": transport, "user_id": user, "url": connection.base_url, "replaced": planned.replaced,
              "dry_run": args.dry_run, "backup": None}
    if args.dry_run:
        if args.json:
            emit_json({**result, "config": planned.text})
        else:
            console.print(f"dry run: {target.describe()} would become (nothing written, no key issued):")
            sys.stdout.write(planned.text)
        return OK
    try:
        key, about_key = _issue_key(args, cfg, user)
    except Exception as exc:
        from cli.keys import KeyCommandFailed
        from cli.output import describe, unreachable

        if isinstance(exc, KeyCommandFailed):
            return _fail(args, FAILED, "failed", f"no key issued: {exc}")
        if unreachable(exc) is None:
            raise
        return _fail(args, UNREACHABLE, "unreachable", f"no key issued: Kafka or Postgres is unreachable: "
                                                       f"{describe(exc)}")
    connection = mcp_config.Connection(connection.base_url, key, user, args.client, connection.command)
    installed = mcp_install.write(mcp_install.plan(target, args.name, transport, connection))
    result.update(about_key, backup=str(installed.backup) if installed.backup else None)
    if target.scope == "project" and key:
        console.print(f"note: {target.path} holds the key: keep it out of version control (.gitignore)")
    if args.json:
        emit_json(result)
    else:
        verb = "replaced" if installed.replaced else "added"
        console.print(f"{verb} {args.name!r} in {target.describe()}: {transport}, user {user}, agent {args.client}"
                      + (f"; the old file is kept as {installed.backup}" if installed.backup else ""))
        console.print(f"restart {args.client} (or reload its MCP servers), then check with "
                      f"`recallstack mcp doctor --client {args.client} --scope {target.scope}`")
        print(target.path)
    return OK


def cmd_doctor(args) -> int:
    from cli import mcp_config
    from cli.mcp_doctor import Doctor, report

    try:
        target = _target(args) if args.client else _first_configured(args)
    except ValueError as exc:
        return _fail(args, USAGE, "refused", str(exc))
    if target is None:
        return _fail(args, FAILED, "failed", f"no MCP client's configuration here has a {args.name!r} entry: run "
                                             f"`recallstack mcp install --client {'|'.join(mcp_config.CLIENTS)}`")
    if not args.client:
        console.print(f"checking {target.client} ({target.describe()}); --client picks another")
    checks = asyncio.run(Doctor(target, args.name, timeout=args.timeout).run())
    result = report(target, checks)
    if args.json:
        emit_json(result)
    else:
        for check in checks:
            mark = {True: "ok  ", False: "FAIL", None: "skip"}[check.ok]
            timing = f" ({check.ms:.0f} ms)" if check.ms else ""
            print(f"{mark} {check.name:<10} {check.detail}{timing}")
            if check.hint:
                print(f"     {'':<10} fix: {check.hint}")
    if result["ok"]:
        return OK
    server = next(c for c in checks if c.name == "server")
    return UNREACHABLE if server.ok is False else FAILED


def _first_configured(args):
    """The first client file (in CLIENTS and SCOPES order) that has the entry, or None."""
    from cli import mcp_config, mcp_install

    for client in mcp_config.CLIENTS:
        for scope in mcp_config.SCOPES[client]:
            if args.scope and scope != args.scope:
                continue
            spot = _target(args, client, scope)
            try:
                text = mcp_install.read(spot.path)
                if text is not None and mcp_config.find(text, spot.servers_at, args.name) is not None:
                    return spot
            except mcp_config.ConfigRefused:
                continue  # a file of a client not asked about: `--client` makes doctor report it
    return None


def _common(parser: argparse.ArgumentParser, client_help: str = CLIENT_HELP, required: bool = True) -> None:
    from cli import mcp_config

    parser.add_argument("--client", required=required, choices=mcp_config.CLIENTS, help=client_help)
    parser.add_argument("--scope", choices=("user", "project", "local"),
                        help="which of the client's files: user (default; vscode: project), project, or local "
                             "(claude-code: ~/.claude.json for this project only)")
    parser.add_argument("--project-dir", default=".", metavar="DIR",
                        help="the project of the project and local scopes (default: the current directory)")
    parser.add_argument("--config", metavar="FILE", help="this file instead of the client's usual one")
    parser.add_argument("--name", default=mcp_config.SERVER_NAME, help="the server's name in the file "
                                                                       "(default recallstack)")


def register(sub, command) -> None:
    """The mcp command and its install and doctor actions (`command` is cli.help_text.command)."""
    from cli.transfer import user_id

    mcp = command(sub, "mcp", "the MCP server on stdio; `mcp install` and `mcp doctor` set clients up", """
        Without an action: serves the Model Context Protocol on stdin/stdout (what IDE configs
        run); its tools (add_memories, search_memory, get_context, search_graph, ...) call the
        REST API at --url. stdout carries the protocol only: logs and errors go to stderr. Over
        HTTP the same server is at <base URL>/mcp (streamable HTTP), started by `recallstack up`.
        Environment: RECALLSTACK_URL, RECALLSTACK_API_KEY, RECALLSTACK_MCP_USER_ID (default:
        the key's user), RECALLSTACK_MCP_AGENT_ID, RECALLSTACK_MCP_APP_ID.
        `recallstack mcp install --help` and `recallstack mcp doctor --help` for the actions.
    """, """
        recallstack mcp install --client cursor           # Cursor, with a new key of the OS user
        recallstack mcp doctor --client cursor            # is everything in place?
        recallstack mcp                                   # what an IDE's MCP config runs
        RECALLSTACK_MCP_USER_ID=alice recallstack mcp --url http://127.0.0.1:8080
    """, """
        0    the client closed the pipe (install, doctor: see their --help)
        130  Ctrl-C
    """)
    mcp.add_argument("--url", help="the recallstack REST base URL (default $RECALLSTACK_URL, else http://127.0.0.1:8080)")
    mcp.set_defaults(func=cmd_mcp, action=None)
    actions = mcp.add_subparsers(dest="action", metavar="[ACTION]", title="actions")
    _register_install(actions, command, user_id)
    _register_doctor(actions, command)


def _register_install(actions, command, user_id) -> None:
    install = command(actions, "install", "write an MCP client's configuration, with a new key", """
        Adds a `recallstack` server to the client's MCP configuration file, merged with what is
        there (other servers and settings stay; a `recallstack` entry is replaced), after
        copying the old file beside it (FILE.bak-<UTC time>). The entry carries a key issued now
        for --user (like `recallstack keys create`: needs this machine's Kafka and Postgres),
        or --key. A file that is not valid JSON (or not the client's shape) is refused and left
        untouched. Each client gets the transport it supports best: streamable HTTP at
        <base URL>/mcp (cursor, claude-code, vscode) or stdio, `recallstack mcp` by its absolute
        path (claude-desktop). Files (--scope): cursor ~/.cursor/mcp.json (user) or
        .cursor/mcp.json (project); claude-code ~/.claude.json (user; local: under this
        project), .mcp.json (project: it is meant to be committed, and would hold the key);
        claude-desktop claude_desktop_config.json (~/.config/Claude on Linux, ~/Library/
        Application Support/Claude on macOS, %APPDATA%\\Claude on Windows); vscode
        .vscode/mcp.json (project) or the user profile's mcp.json.
    """, """
        recallstack mcp install --client cursor
        recallstack mcp install --client claude-code --user alice --scope local
        recallstack mcp install --client vscode --project-dir ~/src/app --dry-run
        recallstack mcp install --client claude-desktop --json | jq -r .backup
    """, """
        0    written (or printed, with --dry-run)
        1    the existing file was refused (left untouched, no key issued), or the key was not issued
        2    usage error (a client without that scope or transport)
        3    Kafka or Postgres unreachable (no key issued, nothing written)
    """, json_output='{"client", "scope", "path", "server_name", "transport", "user_id", "url", "replaced", '
                     '"backup", "key_id", "key_prefix", "dry_run", "config" (with --dry-run)}')
    _common(install)
    install.add_argument("--user", type=user_id, metavar="USER_ID", help="whose memories (default: the OS user name)")
    install.add_argument("--key-scope", choices=("write", "read"), default="write",
                         help="the new key's scope (default write: agents store memories)")
    install.add_argument("--key", metavar="rsk_...", help="use this key instead of issuing one (e.g. a remote server)")
    install.add_argument("--transport", choices=("http", "stdio"), help="instead of the client's best one")
    install.add_argument("--url", help="the base URL the client should use (default: this machine's, "
                                       "$RECALLSTACK_GATEWAY_URL or http://127.0.0.1:8080)")
    install.add_argument("--dry-run", action="store_true", help="print the merged file; write nothing, issue no key")
    install.set_defaults(run=cmd_install)


def _register_doctor(actions, command) -> None:
    doctor = command(actions, "doctor", "check a client's MCP set-up end to end", """
        Checks, in order, each with a verdict and a fix: the client's file parses and has the
        entry; the base URL answers /readyz; the entry's key is valid (GET /v1/me), may write
        and is its user's; the MCP server, reached as the client reaches it (URL and headers, or
        command and environment), answers initialize with instructions and lists its tools; a
        round trip through the tools: add a memory, find it with the very next search, delete it.
        A step that fails skips the ones after it.
    """, """
        recallstack mcp doctor
        recallstack mcp doctor --client cursor
        recallstack mcp doctor --client claude-code --scope project --json | jq '.checks[] | select(.ok == false)'
    """, """
        0    every check passed
        1    a check failed (the report says which, and what to do)
        2    usage error
        3    the server is unreachable
    """, json_output='{"ok", "client", "scope", "path", "checks": [{"name", "ok", "detail", "hint", "ms"}]}')
    _common(doctor, f"{CLIENT_HELP} (default: the first whose file has the entry, in that order)", required=False)
    doctor.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="per request (default 30)")
    doctor.set_defaults(run=cmd_doctor)
