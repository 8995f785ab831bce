"""`recallstack keys create/revoke/list`: API keys, for the operator of the machine.

The operator has what the services have (Kafka and Postgres on this machine), so these
commands append ApiKeyIssued / ApiKeyRevoked to the log through the same command
handlers the command API uses, and wait until the Postgres projection (which every
service checks keys against) has applied them: when `keys create` prints a key, the key
works; when `keys revoke` returns, the key is refused everywhere within the services'
0.5 s key cache. This is also how the very first (admin) key is made: no key is needed
to make one.

`recallstack up` keeps the local stack's first admin key in $RECALLSTACK_HOME/admin.key
(mode 0600); CLI commands that call the REST API use $RECALLSTACK_API_KEY, else that file.
"""

from __future__ import annotations

import os
from datetime import datetime

from adapters import postgres
from adapters.key_directory import KeyDirectory, PgIdentityLookup
from application import command_handlers as handlers
from domain.commands import IssueApiKey, RevokeApiKey
from domain.consistency import ConsistencyToken, NotYetApplied, wait_until_applied
from domain.events import new_id
from domain.identity import IssuedKey, looks_like_key
from settings import EVENTS_TOPIC, Settings

OPERATOR = "operator:cli"
LOCAL_ADMIN = "admin"


class KeyCommandFailed(RuntimeError):
    pass


class _NoEmbedder:  # key commands embed nothing
    model_id = "none"


async def _with_context(cfg: Settings, work):
    import bootstrap

    pool = await postgres.create_pool(cfg.pg_dsn, min_size=1, max_size=2)
    # Through bootstrap like every writer: identity events are sealed with the user's key too.
    publisher = bootstrap.event_publisher(cfg)
    await publisher.start()
    try:
        identity = PgIdentityLookup(lambda: pool)
        ctx = handlers.CommandContext(embedder=_NoEmbedder(), publisher=publisher,
                                      memories=postgres.PgMemoryLookup(pool), correlation_id=new_id(),
                                      identity=identity)
        return await work(ctx, pool)
    finally:
        await publisher.stop()
        await bootstrap.keyring().store.close()
        await pool.close()


async def _projected(pool, token: ConsistencyToken, timeout_s: float) -> None:
    """Wait until the Postgres projection (what every service checks keys against) applied `token`."""
    try:
        await wait_until_applied(token.encode(), EVENTS_TOPIC, "postgres",
                                 lambda: postgres.applied_offsets(pool, "postgres", EVENTS_TOPIC), int(timeout_s * 1000))
    except NotYetApplied as exc:
        raise KeyCommandFailed(f"the Postgres projector did not apply the change within {timeout_s:.0f} s "
                               "(is `recallstack projector postgres` running?); it takes effect once it does") from exc


async def create(cfg: Settings, user_id: str, scopes, name: str | None = None,
                 expires_at: datetime | None = None, timeout_s: float = 30.0) -> IssuedKey:
    async def work(ctx, pool):
        issued, _event, token = await handlers.issue_api_key(
            IssueApiKey(user_id=user_id, actor=OPERATOR, scopes=tuple(scopes), name=name, expires_at=expires_at), ctx)
        await _projected(pool, token, timeout_s)
        return issued
    return await _with_context(cfg, work)


async def resolve(pool, ref: str) -> tuple[str, str]:
    """(key_id, user_id) of a key named by its id or its visible prefix."""
    rows = await pool.fetch("SELECT key_id::text AS key_id, user_id FROM api_keys"
                            " WHERE key_id::text = lower($1) OR prefix = $1", ref)
    if not rows:
        raise KeyCommandFailed(f"no API key with id or prefix {ref!r} (see `recallstack keys list`)")
    if len(rows) > 1:
        raise KeyCommandFailed(f"{len(rows)} keys have the prefix {ref!r}; name one by its key id")
    return rows[0]["key_id"], rows[0]["user_id"]


async def revoke(cfg: Settings, ref: str, reason: str | None = None, timeout_s: float = 30.0) -> dict:
    async def work(ctx, pool):
        key_id, user_id = await resolve(pool, ref)
        try:
            _event, token = await handlers.revoke_api_key(
                RevokeApiKey(user_id=user_id, actor=OPERATOR, key_id=key_id, reason=reason), ctx)
        except (handlers.AlreadyRevoked, handlers.KeyNotFound) as exc:
            raise KeyCommandFailed(str(exc)) from exc
        await _projected(pool, token, timeout_s)
        return {"key_id": key_id, "user_id": user_id, "revoked": True}
    return await _with_context(cfg, work)


async def listing(cfg: Settings, user_id: str | None, include_revoked: bool) -> list[dict]:
    from query_api.pg_reads import api_keys

    pool = await postgres.create_pool(cfg.pg_dsn, min_size=1, max_size=1)
    try:
        return await api_keys(pool, user_id, include_revoked)
    finally:
        await pool.close()


async def _valid(cfg: Settings, secret: str) -> bool:
    pool = await postgres.create_pool(cfg.pg_dsn, min_size=1, max_size=1)
    try:
        return await KeyDirectory(lambda: pool).principal(secret) is not None
    finally:
        await pool.close()


async def ensure_local_admin_key(cfg: Settings) -> tuple[str, bool]:
    """(the local stack's admin key, whether it was made now). Kept in admin.key (0600);
    made again when the file is missing or its key no longer works (a wiped database)."""
    path = cfg.admin_key_file
    if path.exists():
        secret = path.read_text().strip()
        if looks_like_key(secret) and await _valid(cfg, secret):
            return secret, False
    issued = await create(cfg, LOCAL_ADMIN, ["admin"], name="local admin (recallstack up)")
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(issued.secret + "\n")
    os.replace(path.with_suffix(".tmp"), path)
    return issued.secret, True


def cli_api_key(cfg: Settings) -> str | None:
    """The key CLI commands send to the REST API: $RECALLSTACK_API_KEY, else the local admin key."""
    if cfg.api_key:
        return cfg.api_key
    try:
        return cfg.admin_key_file.read_text().strip() or None
    except OSError:
        return None
