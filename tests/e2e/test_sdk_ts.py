"""The TypeScript SDK (sdk/typescript/, @recallstack/sdk) through node's own test runner: its unit tests
(retries, backoff, tokens, errors; no server) and its tests against the running stack, with the
base URL and the admin key of this test session. The package is built first when its build is
missing or older than a source (`make install` does the same with npm ci and tsc)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sdk" / "typescript"


def run(*command: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=PACKAGE, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def built() -> Path:
    assert shutil.which("node") and shutil.which("npm"), "Node.js >= 20 and npm are needed (make install)"
    if not (PACKAGE / "node_modules" / ".bin" / "tsc").exists():
        answer = run("npm", "ci", "--no-audit", "--no-fund")
        assert answer.returncode == 0, answer.stdout[-2000:] + answer.stderr[-2000:]
    sources = [*PACKAGE.joinpath("src").rglob("*.ts"), PACKAGE / "tsconfig.json", PACKAGE / "package.json"]
    built_at = (PACKAGE / "dist" / "index.js").stat().st_mtime if (PACKAGE / "dist" / "index.js").exists() else 0
    if any(source.stat().st_mtime > built_at for source in sources):
        answer = run("npm", "run", "build")
        assert answer.returncode == 0, answer.stdout[-3000:] + answer.stderr[-2000:]
    return PACKAGE


def node_tests(folder: str, env: dict[str, str] | None = None, timeout: float = 300) -> tuple[int, str]:
    """Runs node --test on a folder of the package; (tests passed, output). Fails on any failure."""
    answer = run("node", "--test", "--test-reporter=tap", folder, env=env, timeout=timeout)
    output = answer.stdout + answer.stderr
    assert answer.returncode == 0, output[-6000:]
    counts = {name: int(n) for name, n in re.findall(r"^# (pass|fail|cancelled|skipped|todo) (\d+)$", output, re.M)}
    assert counts.get("fail") == 0 and counts.get("cancelled") == 0 and counts.get("skipped") == 0, counts
    return counts.get("pass", 0), output


def test_the_unit_tests_of_retries_tokens_and_errors(built):
    passed, output = node_tests("test/unit/")
    assert passed >= 20, output[-3000:]


@pytest.mark.e2e
def test_the_sdk_against_the_running_stack(built, services):
    env = {**os.environ, "RECALLSTACK_URL": services.gateway_url}
    assert env.get("RECALLSTACK_API_KEY"), "the session's admin key (tests/e2e/conftest.py sets it)"
    passed, output = node_tests("test/e2e/", env=env, timeout=600)
    assert passed >= 5, output[-3000:]
