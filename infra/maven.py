"""Resolve a component's jars from Maven Central (cached in ~/.m2) into infra/<name>/target."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from infra.process import StartError

INFRA_DIR = Path(__file__).parent


def build(component: str, goals: list[str], marker: Path) -> Path:
    """Run Maven once for `component` (infra/<component>/pom.xml) unless `marker` exists."""
    pom = INFRA_DIR / component / "pom.xml"
    if marker.exists():
        return marker
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StartError(f"{component}: Maven (mvn) not found; install Debian's maven (`make install` does)")
    result = subprocess.run([mvn, "-q", "-B", "-f", str(pom), *goals], capture_output=True, text=True)
    if result.returncode != 0 or not marker.exists():
        raise StartError(f"{component}: Maven build failed ({' '.join(goals)}):\n{(result.stdout + result.stderr)[-3000:]}")
    return marker
