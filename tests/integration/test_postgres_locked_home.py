"""`recallstack infra up` as root with the home and the clone under 0700 directories (a stock
Debian or Docker root, whose home is 0700): Postgres, which refuses root, runs as its own
user and group with no supplementary groups, from a copy of its install outside the clone,
with its cluster outside the home, and no directory is opened up to make that work.
Run as a normal user, it runs as that user from the venv and the home, as before."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import stat

import asyncpg
import pytest

from infra import postgres_server
from infra.process import ProcessTable, start, stop

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ids(pid: int) -> dict[str, list[int]]:
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        name, _, value = line.partition(":")
        if name in ("Uid", "Gid", "Groups"):
            fields[name] = [int(v) for v in value.split()]
    return fields


def _modes(paths) -> dict[str, int]:
    return {str(p): stat.S_IMODE(os.stat(p).st_mode) for p in paths}


def test_postgres_starts_under_a_0700_home_without_opening_it(tmp_path):
    locked = tmp_path / "locked"  # stands for /root: 0700, owned by whoever runs the stack
    locked.mkdir(mode=0o700)
    home = locked / "home"
    home.mkdir(mode=0o700)
    watched = [locked, home, *locked.parents]
    before = _modes(watched)
    port, password = _free_port(), "locked-home-pw"
    dsn = f"postgresql://recallstack:{password}@127.0.0.1:{port}/recallstack"
    processes = ProcessTable(home / "run")

    spec = postgres_server.spec(home, password, dsn, port=port)
    try:
        pid, started, _ = start(spec, processes)
        assert started

        async def ask():
            conn = await asyncpg.connect(dsn, timeout=5)
            try:
                return await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            finally:
                await conn.close()

        assert asyncio.run(ask())  # the extension loaded from the install it runs
        ids = _ids(pid)
        binary = spec.argv[0]
        if os.geteuid() == 0:
            account = pwd.getpwnam(postgres_server.SYSTEM_USER)
            assert ids["Uid"][0] == account.pw_uid
            assert ids["Gid"][0] != 0, "the database user must not run with root's group"
            assert ids["Groups"] == [], "no supplementary groups inherited from root"
            assert not binary.startswith(str(postgres_server.pg_bin_dir().parent)), "runs a copy, not the clone's"
            assert (home / "postgres" / "data").is_symlink()
        else:
            assert ids["Uid"][0] == os.geteuid()
        assert _modes(watched) == before, "no directory above the home was opened up"
    finally:
        stop(spec.name, processes, sig=spec.stop_signal)
        data = (home / "postgres" / "data")
        if data.is_symlink():  # the cluster in the system folder: this test's own
            shutil.rmtree(data.resolve().parent, ignore_errors=True)


def test_a_running_cluster_of_the_earlier_layout_is_not_moved(tmp_path):
    """`recallstack status` prepares the specs too: a cluster inside the home (the layout
    before the system folder) whose server runs must stay where it is until its next start."""
    data = tmp_path / "home" / "postgres" / "data"
    data.mkdir(parents=True)
    (data / "PG_VERSION").write_text("18\n")
    (data / "postmaster.pid").write_text(f"{os.getpid()}\n{data}\n")  # a live process holds it
    cluster = postgres_server.prepare(tmp_path / "home", "pw")
    try:
        assert cluster.data == data and not cluster.created
        assert not data.is_symlink() and (data / "postmaster.pid").exists()
    finally:
        instance = tmp_path / "home" / "postgres" / "instance"
        if instance.exists():
            shutil.rmtree(postgres_server.SYSTEM_DIR / "postgres" / instance.read_text().strip(), ignore_errors=True)
