"""Making a rename or a new file survive a crash: a file's data is fsync'd by whoever wrote
it; the directory entry needs its folder fsync'd too (POSIX says nothing else persists it)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
