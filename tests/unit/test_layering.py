"""The layering rules run as tests (issue 24): import-linter's contracts in pyproject.toml
(domain pure, the two APIs apart, no service importing the CLI, adapters importing no
service), what import-linter cannot see (domain and settings/bootstrap, which are modules, and
bench/, which is no package), and a ceiling on function and module length.

The ceiling is a ratchet: no product function over 100 lines and no module over 700, except
the ones listed in OVERSIZED at their size today, which may shrink and must not grow (the
refactor of issue 24 takes them apart; a later session lowers or removes their entry)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.parsed_source import parse_python

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ["domain", "application", "adapters", "command_api", "query_api", "projectors", "consolidation", "cli", "infra",
           "gateway", "mcp_server", "sdk/python/recallstack"]
MAX_FUNCTION_LINES = 100
MAX_MODULE_LINES = 700
# Offenders allowed at their size, which may shrink, never grow: none left (issue 24 took them apart).
OVERSIZED: dict[str, int] = {}


def product_files() -> list[Path]:
    files = [p for d in PRODUCT for p in (ROOT / d).rglob("*.py")]
    return sorted(files + [ROOT / "settings.py", ROOT / "bootstrap.py"])


def imported(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(parse_python(path)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    answer = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert answer.returncode == 0, answer.stdout[-3000:] + answer.stderr[-2000:]
    assert "BROKEN" not in answer.stdout and answer.stdout.count("KEPT") >= 5


def test_domain_reads_no_settings_nor_the_environment_and_wires_nothing():
    for path in (ROOT / "domain").rglob("*.py"):
        bad = {m for m in imported(path) if m.split(".")[0] in ("settings", "bootstrap")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
        environment = [node.lineno for node in ast.walk(parse_python(path))
                       if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb")]
        assert not environment, f"{path.relative_to(ROOT)} reads the environment (lines {environment})"


# Who may read the environment besides settings.py, and why: none of them for configuration.
READS_THE_ENVIRONMENT = {
    "cli/mcp_commands.py": "XDG_CONFIG_HOME and APPDATA: where the MCP clients (Claude Desktop, VS Code) keep "
                           "their files; no RECALLSTACK_* setting",
    "infra/process.py": "hands the environment on to the processes it starts",
    "infra/pgvector_build.py": "a build step: Go's GOPROXY and the XDG cache folder, no RECALLSTACK_* setting",
    "sdk/python/recallstack/client.py": "the SDK, a package of its own: its user's RECALLSTACK_URL and RECALLSTACK_API_KEY",
}


def environment_reads(path: Path) -> list[int]:
    """Lines that read os.environ or call getenv; setting a variable for child processes
    (os.environ[name] = value) is no read."""
    tree = parse_python(path)
    written = {id(node.value) for node in ast.walk(tree)
               if isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del))}
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and node.attr in ("environ", "getenv", "environb") and id(node) not in written]


def test_only_settings_reads_the_environment():
    readers = {str(path.relative_to(ROOT)): lines for path in product_files()
               if path.name != "settings.py" or path.parent != ROOT
               for lines in [environment_reads(path)] if lines}
    unexpected = {name: lines for name, lines in readers.items() if name not in READS_THE_ENVIRONMENT}
    assert not unexpected, f"read the environment outside settings.py (Settings.from_env is the place): {unexpected}"


def test_no_product_module_imports_the_benchmarks():
    for path in product_files():
        assert not {m for m in imported(path) if m.split(".")[0] == "bench"}, path.relative_to(ROOT)


def sizes() -> dict[str, int]:
    found = {}
    for path in product_files():
        text = path.read_text()
        name = str(path.relative_to(ROOT))
        found[name] = len(text.splitlines())
        for node in ast.walk(parse_python(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found[f"{name}:{node.name}"] = max(found.get(f"{name}:{node.name}", 0),
                                                   node.end_lineno - node.lineno + 1)
    return found


@pytest.fixture(scope="module")
def measured() -> dict[str, int]:
    return sizes()


def test_no_function_or_module_is_too_long_but_the_listed_ones(measured):
    too_long = {name: n for name, n in measured.items()
                if n > (MAX_FUNCTION_LINES if ":" in name else MAX_MODULE_LINES) and name not in OVERSIZED}
    assert not too_long, f"over {MAX_FUNCTION_LINES} lines a function, {MAX_MODULE_LINES} a module: {too_long}"


def test_the_listed_ones_do_not_grow(measured):
    grown = {name: (measured.get(name), ceiling) for name, ceiling in OVERSIZED.items()
             if measured.get(name, 0) > ceiling}
    assert not grown, f"(now, ceiling): {grown}"
