"""The JVM servers: their jars resolved by Maven from Maven Central (cached in ~/.m2) into
infra/<name>/target, and their JVM flags (infra/<name>/jvm.options)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from infra.process import StartError

INFRA_DIR = Path(__file__).parent


def build(component: str, goals: list[str]) -> Path:
    """Run Maven for infra/<component>/pom.xml unless done since the pom last changed."""
    folder = INFRA_DIR / component
    pom, marker = folder / "pom.xml", folder / "target" / ".built"
    if marker.exists() and marker.stat().st_mtime >= max(p.stat().st_mtime for p in folder.rglob("*")
                                                          if p.is_file() and "target" not in p.parts):
        return folder / "target"
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StartError(f"{component}: Maven (mvn) not found; install Debian's maven (`make install` does)")
    result = subprocess.run([mvn, "-q", "-B", "-f", str(pom), *goals], capture_output=True, text=True)
    if result.returncode != 0:
        raise StartError(f"{component}: Maven build failed ({' '.join(goals)}):\n{(result.stdout + result.stderr)[-3000:]}")
    marker.touch()
    return folder / "target"


def java() -> str:
    binary = shutil.which("java")
    if binary is None:
        raise StartError("java not found; install a JDK 17+ (`make install` does)")
    return binary


def options(component: str, heap: str, tmpdir: Path) -> list[str]:
    """infra/<component>/jvm.options (one flag a line, '#' comments) with the heap cap from config."""
    flags = []
    for line in (INFRA_DIR / component / "jvm.options").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-Xmx"):
            flags.append(line)
    tmpdir.mkdir(parents=True, exist_ok=True)
    return [java(), *flags, f"-Xmx{heap}", f"-Djava.io.tmpdir={tmpdir}"]
