"""Where the sparse index lives on disk (RECALLSTACK_SPARSE_DIR, default <home>/sparse).

    <root>/live      the live version's number, replaced atomically (temp file + os.replace)
    <root>/lock      flock'd by the live projector around each apply+commit and by a switch,
                     so a switch never lands between a batch's check of `live` and its commit
    <root>/v<n>/     version n: one Tantivy index (its own single writer)

Readers need no lock: a commit is atomic in Tantivy (meta.json replaced), and a switch
is one rename of `live`.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adapters.durable_files import fsync_dir

LIVE_FILE = "live"
LOCK_FILE = "lock"
_VERSION_DIR = re.compile(r"v(\d+)")


def version_dir(root: Path, version: int) -> Path:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"a version is a positive int, not {version!r}")
    return root / f"v{version}"


def read_live(root: Path) -> int | None:
    """The live version, None when there is none yet (or the file is unreadable)."""
    try:
        text = (root / LIVE_FILE).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def write_live(root: Path, version: int) -> None:
    """Point readers at `version`: a new file renamed over the old one, both synced."""
    version_dir(root, version)  # checks the number
    temp = root / f".{LIVE_FILE}.{os.getpid()}.tmp"
    with open(temp, "w") as out:
        out.write(f"{version}\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, root / LIVE_FILE)
    fsync_dir(root)


def versions(root: Path) -> list[int]:
    """Every version directory under root."""
    if not root.is_dir():
        return []
    return sorted(int(m[1]) for entry in root.iterdir() if entry.is_dir() and (m := _VERSION_DIR.fullmatch(entry.name)))


@contextmanager
def locked(root: Path) -> Iterator[None]:
    """Hold the root's lock (blocking): one batch commit or one switch at a time."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


