"""Resolve a component's jars from Maven Central (cached in ~/.m2) into infra/<name>/target."""

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
