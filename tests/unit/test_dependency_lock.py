"""requirements.lock agrees with pyproject.toml, pins every package with hashes, and is what
`make install` installed (docs/operations.md, "Reproducible installs")."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = (ROOT / "requirements.lock", ROOT / "requirements-nodeps.lock")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def pins(path: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a pip-compile style lock."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            assert current not in entries, f"{path.name}: {current} pinned twice"
            entries[current] = (match.group(2), [])
        elif current and line.strip().startswith("--hash=sha256:"):
            entries[current][1].append(line.strip().split(":", 1)[1].rstrip(" \\"))
        elif line and not line.startswith((" ", "#")):
            raise AssertionError(f"{path.name}: not a pin: {line!r}")
    return entries


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in project["dependencies"] + extras["test"] + extras["bench"]]


def local_sources() -> dict[str, Path]:
    """Dependencies resolved from a folder of the repository (pyproject.toml's [tool.uv.sources]): the
    Python SDK in sdk/python. `make lock` leaves them out of the lock (a directory has no hash, and
    --require-hashes refuses a line without one); `make install` installs them editable."""
    sources = tomllib.loads((ROOT / "pyproject.toml").read_text()).get("tool", {}).get("uv", {}).get("sources", {})
    return {canonicalize_name(name): ROOT / source["path"] for name, source in sources.items() if "path" in source}


def test_every_declared_dependency_is_pinned_within_its_range():
    locked, local = pins(LOCKS[0]), local_sources()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        if name in local:
            project = tomllib.loads((local[name] / "pyproject.toml").read_text())["project"]
            assert canonicalize_name(project["name"]) == name, f"{local[name]} is {project['name']}, not {name}"
            assert requirement.specifier.contains(project["version"], prereleases=True), (requirement, project["version"])
            assert name not in locked, f"{name} comes from {local[name]}: it has no place in requirements.lock"
            assert metadata.version(name) == project["version"], f"{name} is not installed from {local[name]}"
            continue
        assert name in locked, f"{requirement} is in pyproject.toml, not in requirements.lock: run `make lock`"
        version = locked[name][0]
        assert requirement.specifier.contains(version, prereleases=True), \
            f"requirements.lock pins {name}=={version}, outside pyproject.toml's {requirement}: run `make lock`"


def test_every_pin_has_a_hash():
    for path in LOCKS:
        entries = pins(path)
        assert entries, f"{path.name} pins nothing"
        for name, (version, hashes) in entries.items():
            assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), f"{path.name}: {name}=={version}"


def test_the_environment_is_the_lock():
    """What runs the tests was installed from the lock (`make install`), at every pinned version."""
    wrong = {}
    for path in LOCKS:
        for name, (version, _) in pins(path).items():
            try:
                installed = metadata.version(name)
            except metadata.PackageNotFoundError:
                installed = None
            if installed != version:
                wrong[name] = (version, installed)
    assert not wrong, f"installed versions differ from the lock (locked, installed): {wrong}; run `make install`"


def test_the_weights_package_is_the_one_pyproject_names():
    text = (ROOT / "pyproject.toml").read_text()
    [(name, (version, _))] = pins(LOCKS[1]).items()
    assert f'"{name}=={version}"' in text  # the comment there says why it is installed apart
