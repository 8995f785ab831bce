"""`recallstack keys create/revoke/list`: API keys, for the operator of the machine.

The operator has what the services have (Kafka and Postgres on this machine), so these
commands run the key use cases of application/key_admin.py (the command API's own handlers,
then a wait until the Postgres projection applied the change) on ports that bootstrap.key_admin
wires: when `keys create` prints a key, the key works; when `keys revoke` returns, the key is
refused everywhere within the services' 0.5 s key cache. This is also how the very first
(admin) key is made: no key is needed to make one.

`recallstack up` keeps the local stack's first admin key in $RECALLSTACK_HOME/admin.key
(mode 0600); CLI commands that call the REST API use $RECALLSTACK_API_KEY, else that file.
"""

from __future__ import annotations

import os
from datetime import datetime

from application import key_admin
from application.key_admin import KeyCommandFailed  # noqa: F401 (cli/key_commands.py and mcp_commands.py catch it)
from domain.identity import IssuedKey, looks_like_key
from settings import Settings

LOCAL_ADMIN = "admin"


def _ports(cfg: Settings, writes: bool = True):
    import bootstrap  # the composition root, imported when a command runs (the CLI starts without FastAPI)

    return bootstrap.key_admin(cfg, writes)


async def create(cfg: Settings, user_id: str, scopes, name: str | None = None,
                 expires_at: datetime | None = None, timeout_s: float = 30.0) -> IssuedKey:
    async with _ports(cfg) as admin:
        return await key_admin.create(admin, user_id, scopes, name, expires_at, timeout_s)


async def revoke(cfg: Settings, ref: str, reason: str | None = None, timeout_s: float = 30.0) -> dict:
    async with _ports(cfg) as admin:
        return await key_admin.revoke(admin, ref, reason, timeout_s)


async def listing(cfg: Settings, user_id: str | None, include_revoked: bool) -> list[dict]:
    async with _ports(cfg, writes=False) as admin:
        return await key_admin.listing(admin, user_id, include_revoked)


async def _valid(cfg: Settings, secret: str) -> bool:
    async with _ports(cfg, writes=False) as admin:
        return await key_admin.works(admin, secret)


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
