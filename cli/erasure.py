"""`recallstack users erase` and `recallstack keystore backup|restore`: erasure by
crypto-shredding and the key store's own backups (docs/security.md)."""

from __future__ import annotations

import asyncio
import getpass
from datetime import datetime
from pathlib import Path

from cli.configuration import load_settings as _settings
from cli.output import FAILED, OK, USAGE, console, emit_json, error
from cli.transfer import user_id as user_id_type
from settings import PROJECTIONS, projector_group

PROJECTOR_GROUPS = tuple(projector_group(name) for name in PROJECTIONS)


async def _wait_projected(bootstrap_servers: str, token: str, timeout_s: float) -> list[str]:
    """The projector groups that have NOT applied the token within timeout_s."""
    from adapters.kafka_log import GroupProgress
    from domain.consistency import ConsistencyToken

    wanted = {p: o + 1 for p, o in ConsistencyToken.decode(token).offsets}
    late = []
    for group in PROJECTOR_GROUPS:
        progress = GroupProgress(bootstrap_servers, group)
        await progress.start()
        try:
            if not await progress.wait(wanted, timeout_s):
                late.append(group.rsplit(".", 1)[1])
        finally:
            await progress.close()
    return late


def cmd_users_erase(args) -> int:
    if not args.yes:
        error(f"erasing {args.user_id} cannot be undone: every memory, key and row of the user becomes unreadable "
              "for good (in the log and its backups too); pass --yes to go ahead")
        return USAGE
    import bootstrap

    cfg = _settings()

    async def run():
        event, token = await bootstrap.erase_user(args.user_id, actor=f"operator:{getpass.getuser()}",
                                                  reason=args.reason)
        late = await _wait_projected(cfg.kafka_bootstrap, token.encode(), args.wait) if args.wait > 0 else []
        return event, token, late

    event, token, late = asyncio.run(run())
    result = {"user_id": args.user_id, "event_id": event.event_id, "consistency_token": token.encode(),
              "keys_destroyed": True, "purged_by": [g.rsplit(".", 1)[1] for g in PROJECTOR_GROUPS
                                                     if g.rsplit(".", 1)[1] not in late] if args.wait > 0 else [],
              "still_purging": late}
    if args.json:
        emit_json(result)
    else:
        console.print(f"{args.user_id}: data keys destroyed; UserErased appended ({token.encode()})", highlight=False)
        if args.wait > 0:
            console.print("read models purged: " + (", ".join(result["purged_by"]) or "none yet")
                          + (f"; still purging: {', '.join(late)}" if late else ""), highlight=False)
    return FAILED if late else OK


async def erased_in_log(bootstrap_servers: str) -> dict[str, datetime]:
    """user_id -> when it was last erased, from the UserErased events of the whole log
    (never sealed, so readable without any key)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from adapters import kafka_codec, kafka_security
    from settings import EVENTS_PARTITIONS, EVENTS_TOPIC

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, isolation_level="read_committed",
                                enable_auto_commit=False, max_partition_fetch_bytes=8 * 1024 * 1024,
                                **kafka_security.client_options())
    await consumer.start()
    erased: dict[str, datetime] = {}
    try:
        partitions = [TopicPartition(EVENTS_TOPIC, p) for p in range(EVENTS_PARTITIONS)]
        consumer.assign(partitions)
        starts, ends = await consumer.beginning_offsets(partitions), await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        pending = {tp for tp in partitions if starts[tp] < ends[tp]}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=2000, max_records=20_000)
            for tp, records in batch.items():
                for record in records:
                    if dict(record.headers or ()).get(kafka_codec.TYPE_HEADER) == b"UserErased":
                        event = kafka_codec.decode(record.value, record.headers)
                        erased[event.user_id] = max(event.occurred_at, erased.get(event.user_id, event.occurred_at))
            # Done with a partition once its position passed its end (trailing transaction markers included).
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
            if not batch and pending:
                still = [tp for tp in pending if await consumer.position(tp) < ends[tp] - 1]
                if not still:
                    break  # only a commit marker left: read_committed never returns it
    finally:
        await consumer.stop()
    return erased


def cmd_keystore_backup(args) -> int:
    import bootstrap

    path = Path(args.file)
    if path.exists() and not args.force:
        error(f"{path} exists; pass --force to replace it")
        return FAILED

    async def run():
        try:
            return await bootstrap.keyring().store.backup(path)
        finally:
            await bootstrap.keyring().store.close()

    rows = asyncio.run(run())
    if args.json:
        emit_json({"file": str(path), "rows": rows})
    else:
        console.print(f"{rows} key rows (wrapped keys and tombstones) written to {path} (mode 600)", highlight=False)
    return OK


def cmd_keystore_restore(args) -> int:
    import bootstrap

    cfg = _settings()

    async def run():
        store = bootstrap.keyring().store
        try:
            read, written = await store.restore(Path(args.file))
            redestroyed = {} if args.skip_log_check else await store.destroy_erased_before(
                await erased_in_log(cfg.kafka_bootstrap))
            return read, written, redestroyed
        finally:
            await store.close()

    try:
        read, written, redestroyed = asyncio.run(run())
    except (ValueError, FileNotFoundError) as exc:
        error(str(exc))
        if args.json:
            emit_json({"error": {"code": "failed", "message": str(exc)}})
        return FAILED
    result = {"file": args.file, "rows_read": read, "rows_offered": written,
              "destroyed_again": {u: v for u, v in redestroyed.items()}}
    if args.json:
        emit_json(result)
    else:
        console.print(f"restored from {args.file}: {read} rows read; keys of {len(redestroyed)} erased user(s) "
                      "destroyed again (erased after the backup was taken)", highlight=False)
    return OK


def register(sub, command) -> None:
    """The `users` and `keystore` commands (`command` is cli.help_text.command)."""
    users = command(sub, "users", "operations on a user: erase", """
        Operator actions on one user id. The HTTP API has the same erasure as an admin
        route; this command needs no API key, only this machine's secrets (RECALLSTACK_HOME).
    """, """
        recallstack users erase alice --yes
    """)
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION", title="actions")
    erase = command(actions, "erase", "erase a user for good (crypto-shredding)", """
        Destroys every data key of USER_ID in the key store first (from that moment none
        of the user's sealed events can be read: in the log, its backups, a replay), then
        appends UserErased, on which every projector deletes the user's rows, nodes, cache
        entries, stored answers and index documents (the sparse index is rewritten without
        them). Waits (--wait) until every projector has applied it. Idempotent. A later write for the same id starts with a new key.
        See docs/security.md for what erasure covers and what an operator must still do.
    """, """
        recallstack users erase alice --yes
        recallstack users erase alice --yes --reason "GDPR art. 17 request #42" --json
        recallstack users erase alice --yes --wait 0      # do not wait for the read models
    """, """
        0    keys destroyed, UserErased appended (and applied by every projector, with --wait)
        1    a projector had not applied it within --wait (it will: the keys are gone already)
        2    usage error (no --yes)
        3    Kafka or the key store (Postgres) is unreachable: nothing was destroyed or appended
    """, json_output='{"user_id", "event_id", "consistency_token", "keys_destroyed", "purged_by", "still_purging"}')
    erase.add_argument("user_id", type=user_id_type, metavar="USER_ID", help="whom to erase")
    erase.add_argument("--yes", action="store_true", help="confirm: erasure cannot be undone")
    erase.add_argument("--reason", help="why (kept in the UserErased event: write no personal data here)")
    erase.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                       help="wait up to this long for the projectors to purge (default 30; 0: do not wait)")
    erase.set_defaults(func=cmd_users_erase)

    keystore = command(sub, "keystore", "the key store of the users' data keys: backup, restore", """
        The key store (Postgres schema `keystore`, outside the log and the read models)
        holds each user's data keys, wrapped with the master key of secrets.env. Back it up
        on its own schedule, with a retention shorter than your erasure promise: a backup
        holds the keys of users erased after it was taken. Back up the master key
        (secrets.env) separately from both the key store backups and the log backups.
    """, """
        recallstack keystore backup keys-2026-11-28.jsonl
        recallstack keystore restore keys-2026-11-28.jsonl
    """)
    ks_actions = keystore.add_subparsers(dest="action", required=True, metavar="ACTION", title="actions")
    backup = command(ks_actions, "backup", "write every wrapped key and tombstone to a file", """
        One JSON line per key version (user_id, version, wrapped_key or null when destroyed,
        created_at, destroyed_at), mode 600. No key is readable without the master key.
    """, """
        recallstack keystore backup keys.jsonl
        recallstack keystore backup keys.jsonl --force --json
    """, """
        0    written
        1    FILE exists (pass --force)
        3    the key store (Postgres) is unreachable
    """, json_output='{"file", "rows"}')
    backup.add_argument("file", metavar="FILE")
    backup.add_argument("--force", action="store_true", help="replace FILE if it exists")
    backup.set_defaults(func=cmd_keystore_backup)
    restore = command(ks_actions, "restore", "add a backup's keys back, never undoing an erasure", """
        Adds the rows the key store lacks. A destroyed key stays destroyed whichever side
        says so, and then every key created before its user's last UserErased in the log
        is destroyed again, so an old backup cannot bring an erased user back. Refuses a
        backup whose keys this master key cannot unwrap.
    """, """
        recallstack keystore restore keys.jsonl
        recallstack keystore restore keys.jsonl --json
    """, """
        0    restored
        1    not a key store backup, or keys of another master key
        3    the key store or Kafka is unreachable
    """, json_output='{"file", "rows_read", "rows_offered", "destroyed_again"}')
    restore.add_argument("file", metavar="FILE")
    restore.add_argument("--skip-log-check", action="store_true",
                         help="do not read the log for erasures (only when Kafka is gone for good)")
    restore.set_defaults(func=cmd_keystore_restore)
