"""`recallstack keys`: API keys (create, revoke, list; cli/keys.py does the work)."""

from __future__ import annotations

import asyncio

from cli.configuration import fail as _fail, load_settings as _settings
from cli.output import FAILED, OK, UNREACHABLE, console, describe, emit_json, print_table, unreachable


def _key_command(args, work, show) -> int:
    """Run one `keys` action: its result as a table/JSON, its failure with the right exit code."""
    from cli.keys import KeyCommandFailed

    try:
        result = asyncio.run(work(_settings()))
    except KeyCommandFailed as exc:
        return _fail(args, FAILED, "failed", str(exc))
    except Exception as exc:
        if unreachable(exc) is None:
            raise
        return _fail(args, UNREACHABLE, "unreachable", f"Kafka or Postgres is unreachable: {describe(exc)}")
    if args.json:
        emit_json(result)
    else:
        show(result)
    return OK


def cmd_keys_create(args) -> int:
    from datetime import datetime, timezone

    from cli import keys

    expires = None
    if args.expires:
        try:
            expires = datetime.fromisoformat(args.expires)
        except ValueError:
            return _fail(args, FAILED, "invalid", f"--expires: not an ISO 8601 date or time: {args.expires!r}")
        expires = expires if expires.tzinfo else expires.replace(tzinfo=timezone.utc)
        if expires <= datetime.now(timezone.utc):
            return _fail(args, FAILED, "invalid", "--expires: must be in the future")

    async def work(cfg):
        issued = await keys.create(cfg, args.user, args.scope, args.name, expires)
        return {"key_id": issued.key_id, "key": issued.secret, "prefix": issued.prefix, "user_id": args.user,
                "scopes": list(issued.scopes), "name": args.name, "expires_at": expires.isoformat() if expires else None}

    def show(result):
        console.print(f"key {result['prefix']}… for {result['user_id']} ({', '.join(result['scopes'])}), "
                      f"id {result['key_id']}; shown once, store it now:")
        print(result["key"], flush=True)
    return _key_command(args, work, show)


def cmd_keys_revoke(args) -> int:
    from cli import keys

    return _key_command(args, lambda cfg: keys.revoke(cfg, args.key, args.reason),
                        lambda r: console.print(f"revoked key {r['key_id']} of {r['user_id']}"))


def cmd_keys_list(args) -> int:
    from cli import keys

    async def work(cfg):
        return {"keys": await keys.listing(cfg, args.user, args.all)}

    def show(result):
        print_table([{"prefix": k["prefix"], "user": k["user_id"], "scopes": ",".join(k["scopes"]),
                      "name": k["name"] or "", "created": k["created_at"][:19],
                      "expires": (k["expires_at"] or "never")[:19],
                      "revoked": (k["revoked_at"] or "")[:19], "key_id": k["key_id"]} for k in result["keys"]],
                    f"{len(result['keys'])} API keys")
    return _key_command(args, work, show)


def register(sub, command) -> None:
    """The keys command (`command` is cli.help_text.command)."""
    from cli.transfer import key_ref, user_id

    keys = command(sub, "keys", "API keys: create, revoke, list", """
        Every REST and MCP request carries an API key (Authorization: Bearer rsk_...). A key
        belongs to one user and holds scopes: read, write (implies read), admin (implies both
        and may act for any user). Keys are 32 random bytes, shown once, stored only as a
        SHA-256 hash. These commands act on the log and the Postgres read model of this
        machine directly (no key needed: this is how the first admin key is made) and return
        once the change is in effect. `recallstack up` keeps a local admin key in
        $RECALLSTACK_HOME/admin.key. `recallstack keys ACTION --help` for each action.
    """, """
        recallstack keys create --user alice --scope write --name cursor
        recallstack keys list --user alice
        recallstack keys revoke rsk_AbCdEfGh
    """)
    key_actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION", title="actions")
    key_create = command(key_actions, "create", "issue a key for a user (printed once)", """
        Appends ApiKeyIssued (and UserRegistered for a new user) and waits until the key
        works. The key is printed once on stdout; only its hash is kept.
    """, """
        recallstack keys create --user alice --scope write
        recallstack keys create --user ops --scope admin --name "ops laptop" --expires 2027-01-01
        export RECALLSTACK_API_KEY=$(recallstack keys create --user alice --scope read --json | jq -r .key)
    """, """
        0    issued
        1    refused (a bad scope or date, named), or not yet in effect (the projector is not running)
        3    Kafka or Postgres unreachable
    """, json_output='{"key_id", "key", "prefix", "user_id", "scopes", "name", "expires_at"}')
    key_create.add_argument("--user", required=True, type=user_id, metavar="USER_ID", help="whose key")
    key_create.add_argument("--scope", action="append", choices=("read", "write", "admin"), required=True,
                            help="read, write or admin (repeat for several; write implies read)")
    key_create.add_argument("--name", help="a label shown in lists")
    key_create.add_argument("--expires", metavar="ISO8601", help="when the key stops working (default never)")
    key_create.set_defaults(func=cmd_keys_create)
    key_revoke = command(key_actions, "revoke", "revoke a key (refused everywhere within a second)", """
        Names the key by its id or its visible prefix (rsk_ and 8 characters, as `keys list`
        shows). Appends ApiKeyRevoked and waits until the projection applied it; the services'
        key caches hold an answer at most 0.5 s.
    """, """
        recallstack keys revoke rsk_AbCdEfGh
        recallstack keys revoke 6f1c2a9e-0d7b-4c1e-9a55-3e2b8f0a1c44 --reason "laptop lost"
    """, """
        0    revoked
        1    no such key, already revoked, or not yet in effect
        3    Kafka or Postgres unreachable
    """, json_output='{"key_id", "user_id", "revoked"}')
    key_revoke.add_argument("key", metavar="KEY_ID_OR_PREFIX", type=key_ref)
    key_revoke.add_argument("--reason", help="kept in the event and shown in lists")
    key_revoke.set_defaults(func=cmd_keys_revoke)
    key_list = command(key_actions, "list", "list keys (prefixes, scopes, dates; never secrets)", """
        From the Postgres read model. Revoked keys only with --all.
    """, """
        recallstack keys list
        recallstack keys list --user alice --all --json | jq '.keys[].prefix'
    """, """
        0    listed
        3    Postgres unreachable
    """, json_output='{"keys": [{key_id, user_id, prefix, scopes, name, created_at, expires_at, revoked_at}]}')
    key_list.add_argument("--user", type=user_id, metavar="USER_ID", help="only this user's keys")
    key_list.add_argument("--all", action="store_true", help="also revoked keys")
    key_list.set_defaults(func=cmd_keys_list)
