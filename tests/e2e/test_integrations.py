"""The framework integrations (sdk/python/recallstack/integrations/) against the running stack, each
through its framework's real library from PyPI, with that library's fake models (no LLM).

The frameworks are not in the project's venv: `make install` makes .venv-integrations
(langchain-core, llama-index-core, openai-agents) and .venv-crewai (crewai conflicts with
openai-agents), each with the SDK installed editable from sdk/python. Each test runs one script of
tests/e2e/integrations/ in its venv as a subprocess, against this session's services (base
URL, the session's admin key, a fresh user), and fails on any assertion in it. A missing
venv fails: an integration that is not tested must not pass as green."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHECKS = Path(__file__).resolve().parent / "integrations"
VENVS = {"langchain": ".venv-integrations", "llamaindex": ".venv-integrations",
         "openai_agents": ".venv-integrations", "crewai": ".venv-crewai"}
FRAMEWORK_MODULES = ("langchain_core", "llama_index", "agents", "crewai")
QUIET = {  # no telemetry or trace export from the frameworks (there is no network to send it to)
    "OPENAI_AGENTS_DISABLE_TRACING": "1", "CREWAI_DISABLE_TELEMETRY": "true", "CREWAI_TRACING_ENABLED": "false",
    "OTEL_SDK_DISABLED": "true", "PYTHONDONTWRITEBYTECODE": "1",
}


def venv_python(framework: str) -> Path:
    python = ROOT / VENVS[framework] / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python.parent.parent} is missing: run make install (it creates the integrations' venvs)")
    return python


def run(python: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run([str(python), *args], env={**os.environ, **QUIET, **(env or {})}, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("framework", sorted(VENVS))
def test_integration(framework, services, user_id, tmp_path):
    python = venv_python(framework)
    where = run(python, "-c", "import recallstack; print(recallstack.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(ROOT / "sdk" / "python"), \
        f"{VENVS[framework]} has a recallstack SDK from {where.stdout.strip()}, not sdk/python: run make install"
    # cwd: a scratch folder, so the frameworks' local files (sqlite, caches) do not land in the repository
    done = run(python, str(CHECKS / f"{framework}_check.py"), cwd=tmp_path,
               env={"RECALLSTACK_URL": services.gateway_url, "CHECK_USER_ID": user_id})
    assert done.returncode == 0, f"{framework}_check.py failed:\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    assert f"{framework}: ok" in done.stdout


@pytest.mark.parametrize("venv", sorted(set(VENVS.values())))
def test_importing_the_sdk_imports_no_framework(venv):
    """`import recallstack` must work without any framework: checked where they are installed."""
    python = ROOT / venv / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python.parent.parent} is missing: run make install")
    code = ("import sys, recallstack, recallstack.integrations; "
            f"print([m for m in sys.modules if m.split('.')[0] in {FRAMEWORK_MODULES!r}])")
    done = run(python, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
