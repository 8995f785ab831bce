"""`recallstack mcp install`: write one MCP client's configuration so it reaches recallstack.

The file is merged, never replaced (cli/mcp_config.py): other servers and settings stay.
The old file is copied beside it first (NAME.bak-<UTC time>, its mode kept) and the new one
written atomically (a new file is made 0600: it holds an API key). A file that cannot be
read as the client's JSON is refused before anything happens: no key is issued, nothing is
written.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cli.mcp_config import ConfigRefused, Connection, Target, backup_name, entry, merge

PLACEHOLDER_KEY = "rsk_<issued when not a dry run>"


@dataclass
class Installed:
    target: Target
    text: str  # the file's new text
    replaced: bool  # an entry of that name was there
    backup: Path | None = None
    written: bool = False


def recallstack_command() -> tuple[str, ...]:
    """How a client should start `recallstack mcp`: this installation's own executable (an
    absolute path: IDEs do not run a shell with the venv on PATH), else this Python with -m."""
    beside = Path(sys.executable).with_name("recallstack")
    found = str(beside) if beside.exists() else shutil.which("recallstack")
    return (found,) if found else (sys.executable, "-m", "cli.main")


def read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise ConfigRefused(f"{path}: not UTF-8 text ({exc.reason}); left as it is") from None


def plan(target: Target, name: str, transport: str, connection: Connection) -> Installed:
    """The merged file for `connection`, computed from the file as it is now (nothing written)."""
    text = read(target.path)
    try:
        merged, replaced = merge(text, target.servers_at, name, entry(target.client, transport, connection))
    except ConfigRefused as exc:
        raise ConfigRefused(f"{target.path}: {exc}. It was left as it is: fix it (or move it away) and run the "
                            "command again") from None
    return Installed(target, merged, replaced)


def write(installed: Installed, now: datetime | None = None) -> Installed:
    """Back the old file up (if any), then put the new text in place atomically."""
    path = installed.target.path
    path = path.resolve() if path.is_symlink() else path  # a dotfiles link stays a link: its target changes
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = 0o600
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        first = backup = backup_name(path, now or datetime.now(timezone.utc))
        serial = 1
        while backup.exists():  # two installs within a second
            backup = first.with_name(f"{first.name}-{serial}")
            serial += 1
        shutil.copy2(path, backup)
        installed.backup = backup
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(installed.text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    installed.written = True
    return installed
