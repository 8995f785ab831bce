"""The monitoring files under infra/monitoring/ (docs/observability.md) are valid and name
metrics that exist: promtool (Debian's prometheus package) checks the scrape configs and the
rules and runs the rules' unit tests; every recallstack_* metric, label and route a rule or a
dashboard names is looked up in the code, so renaming a metric breaks this test, not an alert
in production. No server needed."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from infra import monitoring
from infra.stack import PROJECTOR_METRICS_PORTS, WORKER_METRICS_PORTS
from tests.conftest import REPO
from tests.unit.parsed_source import parse_python

MONITORING = REPO / "infra" / "monitoring"
RULES = MONITORING / "rules" / "recallstack.rules.yml"
RULE_TESTS = MONITORING / "rules" / "recallstack.rules.test.yml"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
SOURCE_DIRS = ("adapters", "command_api", "query_api", "projectors", "consolidation", "gateway", "mcp_server", "cli")

# Metrics the rules and the dashboard already use but the code does not export yet, with the
# file that should (its owner adds them; then remove them here: a test says when).
PENDING: dict[str, tuple[str, list[str], str]] = {}
TARGET_LABELS = {"job", "instance", "component"}  # set by the scrape config (prometheus.yml)
PROMQL_WORDS = {"sum", "max", "min", "avg", "count", "rate", "increase", "irate", "by", "without", "on", "ignoring",
                "group_left", "group_right", "and", "or", "unless", "histogram_quantile", "up", "vector", "scalar",
                "max_over_time", "min_over_time", "abs", "le", "bool", "offset"}


def promtool() -> str:
    binary = shutil.which("promtool")
    assert binary, "promtool (Debian package prometheus) is required; `make install` installs it"
    return binary


def run_promtool(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run([promtool(), *args], capture_output=True, text=True, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# ---- what the code defines ------------------------------------------------------------------

def defined_metrics() -> dict[str, tuple[str, list[str]]]:
    """{name as written: (kind, label names)} of every prometheus_client constructor in the code."""
    found: dict[str, tuple[str, list[str]]] = {}
    for folder in SOURCE_DIRS:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(parse_python(path)):
                if not (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None))
                        in ("Counter", "Gauge", "Histogram", "Summary")):
                    continue
                if not (node.args and isinstance(node.args[0], ast.Constant) and str(node.args[0].value)
                        .startswith("recallstack_")):
                    continue
                labels_node = node.args[2] if len(node.args) > 2 else next(
                    (k.value for k in node.keywords if k.arg == "labelnames"), None)
                labels = [e.value for e in labels_node.elts] if isinstance(labels_node, (ast.List, ast.Tuple)) else []
                found[node.args[0].value] = (node.func.id if isinstance(node.func, ast.Name) else node.func.attr, labels)
    return found


def series_names(metrics: dict[str, tuple[str, list[str]]]) -> dict[str, tuple[str, list[str]]]:
    """{series name Prometheus stores: (base name, labels)}: counters end in _total, histograms
    and summaries give _bucket/_count/_sum (histograms' buckets add `le`)."""
    out = {}
    for name, (kind, labels) in metrics.items():
        kind = kind.lower()
        if kind == "counter":
            out[name if name.endswith("_total") else name + "_total"] = (name, labels)
        elif kind in ("histogram", "summary"):
            out[name + "_bucket"] = (name, [*labels, "le"])
            out[name + "_count"] = out[name + "_sum"] = (name, labels)
        else:
            out[name] = (name, labels)
    return out


def http_services() -> set[str]:
    """The `service` label values of the HTTP histogram: install_http_metrics(app, "<service>")."""
    text = "\n".join(p.read_text() for d in ("command_api", "query_api", "gateway") for p in (REPO / d).rglob("*.py"))
    return set(re.findall(r'install_http_metrics\(\s*\w+\s*,\s*"([\w-]+)"', text))


def http_routes() -> set[str]:
    text = "\n".join(p.read_text() for d in ("command_api", "query_api") for p in (REPO / d).rglob("*.py"))
    return set(re.findall(r'@\w+\.(?:get|post|patch|put|delete)\(\s*"([^"]+)"', text)) | {"/healthz", "/readyz",
                                                                                          "/metrics"}


# ---- what the rules and dashboards use ----------------------------------------------------------

def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def alerts() -> list[dict]:
    return [rule for rule in rules() if "alert" in rule]


def recorded() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


def dashboard_exprs() -> list[tuple[str, str]]:
    return [(f"{path.name}: {panel['title']}", target["expr"])
            for path in DASHBOARDS for panel in json.loads(path.read_text())["panels"]
            for target in panel.get("targets", [])]


def all_exprs() -> list[tuple[str, str]]:
    named = [(rule.get("alert") or rule["record"], rule["expr"]) for rule in rules()]
    return named + dashboard_exprs()


SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')


def selectors(expr: str):
    """(metric name, {label: (op, value)}) of each series selector naming a recallstack_* series."""
    expr = re.sub(r'"[^"]*"', lambda m: m.group(0).replace("(", "").replace(")", ""), expr)
    for match in SELECTOR.finditer(expr):
        name, braces = match.group(1), match.group(2) or ""
        if name.startswith("recallstack_") or (":" in name and "recallstack_" in name) or name == "up":
            yield name, {label: (op, value) for label, op, value in MATCHER.findall(braces)}


def grouping_labels(expr: str) -> set[str]:
    return {label.strip() for group in re.findall(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)", expr)
            for label in group.split(",") if label.strip()}


# ---- promtool -----------------------------------------------------------------------------------

def test_promtool_checks_the_rules():
    out = run_promtool("check", "rules", str(RULES))
    assert f"SUCCESS: {len(rules())} rules found" in out


def test_the_rules_unit_tests_pass():
    """Synthetic series that make each alert fire, and ones that must not (or not yet: `for`)."""
    out = run_promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert "SUCCESS" in out


def test_every_alert_is_unit_tested_firing_and_quiet():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    checks = [check for test in tests for check in test.get("alert_rule_test", [])]
    fired = {c["alertname"] for c in checks if c["exp_alerts"]}
    quiet = {c["alertname"] for c in checks if not c["exp_alerts"]}
    names = {a["alert"] for a in alerts()}
    assert names - fired == set(), "alerts no test makes fire"
    assert names - quiet == set(), "alerts no test checks stay quiet"


@pytest.mark.parametrize("config", ["compose", "local"])
def test_promtool_checks_the_scrape_configs(tmp_path, config):
    """infra/monitoring/prometheus.yml (compose) and the one `up --with-monitoring` writes."""
    shutil.copy(RULES, tmp_path / RULES.name)
    if config == "compose":
        text = (MONITORING / "prometheus.yml").read_text().replace("/etc/prometheus/rules/", f"{tmp_path}/")
    else:
        text = monitoring.config_text(monitoring.scrape_jobs(), lambda job: "127.0.0.1", [str(tmp_path / RULES.name)])
    (tmp_path / "prometheus.yml").write_text(text)
    out = run_promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert "SUCCESS" in out


def test_the_compose_scrape_config_is_the_generated_one_and_covers_every_process():
    assert (MONITORING / "prometheus.yml").read_text() == monitoring.compose_config(), \
        "regenerate: python -c 'from infra import monitoring; print(monitoring.compose_config(), end=\"\")' " \
        "> infra/monitoring/prometheus.yml"
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"][0] for job in config["scrape_configs"]}
    expected = {"web-edge": "web-edge:8083", "command-api": "command-api:8081", "query-api": "query-api:8082",
                **{f"projector-{n}": f"projector-{n}:{p}" for n, p in PROJECTOR_METRICS_PORTS.items()},
                **{f"worker-{n}": f"worker-{n}:{p}" for n, p in WORKER_METRICS_PORTS.items()}}
    assert targets == expected
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]
    assert set(targets) <= set(compose), "every scrape job is a compose service"


# ---- the rules' contents --------------------------------------------------------------------------

@pytest.mark.parametrize("alert", alerts(), ids=lambda a: a["alert"])
def test_every_alert_says_how_bad_and_what_to_look_at(alert):
    assert alert.get("for"), "a `for` so one bad scrape does not page"
    assert alert["labels"]["severity"] in ("critical", "warning", "info")
    assert len(alert["annotations"]["summary"]) > 10
    assert len(alert["annotations"]["description"]) > 80, "the description says what to look at"


def test_the_slo_thresholds_are_the_contract_ones():
    by_name = {a["alert"]: a for a in alerts()}
    assert by_name["RecallstackSearchLatencyHigh"]["expr"].strip().endswith("> 0.1")
    assert by_name["RecallstackWriteLatencyHigh"]["expr"].strip().endswith("> 0.2")
    latency = {r["record"]: r["expr"] for r in rules() if "record" in r}
    assert 'route="/v1/memories/search"' in latency["slo:recallstack_search_seconds:p99_5m"]


# ---- metric names, labels and values exist in the code ---------------------------------------------

def test_every_metric_a_rule_or_dashboard_uses_is_defined_in_the_code():
    series = series_names(defined_metrics())
    pending = series_names({name: (kind, labels) for name, (kind, labels, _owner) in PENDING.items()})
    records = recorded()
    missing = []
    for where, expr in all_exprs():
        for name, _matchers in selectors(expr):
            if name == "up" or name in series or name in pending:
                continue
            if ":" in name:
                if name not in records:
                    missing.append(f"{where}: recording rule {name} is not defined in {RULES.name}")
                continue
            missing.append(f"{where}: {name} is not defined by any Counter/Gauge/Histogram in {SOURCE_DIRS}")
    assert not missing, "\n".join(missing)


def test_pending_metrics_are_still_pending():
    """When the owner adds a pending metric, drop it from PENDING (the normal checks then apply)."""
    defined = set(defined_metrics())
    done = {name: owner for name, (_k, _l, owner) in PENDING.items() if name in defined}
    assert not done, f"now defined, remove from PENDING in {Path(__file__).name}: {done}"


def test_every_label_a_rule_or_dashboard_matches_or_groups_by_exists():
    series = {**series_names(defined_metrics()),
              **series_names({n: (k, l) for n, (k, l, _o) in PENDING.items()})}
    rule_labels = {label for r in alerts() for label in r.get("labels", {})}
    problems = []
    for where, expr in all_exprs():
        names = [(name, matchers) for name, matchers in selectors(expr)]
        known = set(TARGET_LABELS)
        for name, matchers in names:
            labels = set(series[name][1]) if name in series else set()
            known |= labels
            if name in series:
                for label in matchers:
                    if label not in labels | TARGET_LABELS:
                        problems.append(f"{where}: {name} has no label {label!r} (it has {sorted(labels)})")
        # Labels of recording rules are the groupings of their expressions; `le` of buckets is known.
        known |= {"le"} | {label for r in rules() if "record" in r for label in grouping_labels(r["expr"])}
        for label in grouping_labels(expr) - known - rule_labels:
            problems.append(f"{where}: groups by {label!r}, which none of its metrics has")
    assert not problems, "\n".join(problems)


def test_label_values_the_rules_match_exist():
    """service= is an install_http_metrics name, route= a route the APIs declare."""
    services, routes = http_services(), http_routes()
    assert {"command", "query"} <= services
    problems = []
    for where, expr in all_exprs():
        for name, matchers in selectors(expr):
            for label, (op, value) in matchers.items():
                if op != "=":
                    continue
                if label == "service" and value not in services:
                    problems.append(f"{where}: service={value!r}; the APIs are {sorted(services)}")
                if label == "route" and value not in routes:
                    problems.append(f"{where}: route={value!r} is not a route of the APIs")
    assert not problems, "\n".join(problems)


# ---- Grafana ------------------------------------------------------------------------------------

def test_there_is_an_overview_dashboard():
    assert "recallstack-overview.json" in [p.name for p in DASHBOARDS]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_each_dashboard_panel_has_a_datasource_and_queries_real_metrics(path):
    dashboard = json.loads(path.read_text())
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    assert dashboard["uid"] and dashboard["title"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    series = {**series_names(defined_metrics()), **series_names({n: (k, l) for n, (k, l, _o) in PENDING.items()})}
    for panel in panels:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid
            names = [name for name, _ in selectors(target["expr"]) if name != "up" or panel["type"] == "stat"]
            assert names, f"{panel['title']}: {target['expr']} names no recallstack metric"
            assert all(n in series or n == "up" for n in names), f"{panel['title']}: {names}"


def test_grafana_provisioning_points_at_the_dashboards_compose_mounts():
    provider = yaml.safe_load((MONITORING / "grafana" / "provisioning" / "dashboards" / "recallstack.yml").read_text())
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in compose["volumes"] if v.startswith("./"))
    assert mounts["./infra/monitoring/grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    assert mounts["./infra/monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    datasource = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"


# ---- the metrics this work added --------------------------------------------------------------------

def test_the_web_edge_serves_its_own_metrics():
    from fastapi.testclient import TestClient

    from gateway.app import create_app

    with TestClient(create_app("http://127.0.0.1:9", "http://127.0.0.1:9")) as client:
        assert client.get("/readyz").status_code == 503  # nothing listens on port 9
        answer = client.get("/metrics")
        assert answer.status_code == 200
        assert 'recallstack_http_request_seconds_count{method="GET",route="/readyz",service="web-edge",status="503"}' \
            in answer.text


def test_the_local_scrape_config_has_a_target_per_api_process():
    jobs = {job["job"]: job for job in monitoring.scrape_jobs(api_processes=2)}
    text = monitoring.config_text(list(jobs.values()), lambda job: "127.0.0.1", [])
    assert '"127.0.0.1:8082", "127.0.0.1:8182"' in text and '"127.0.0.1:8081", "127.0.0.1:8181"' in text
    assert '"127.0.0.1:8083"' in text


def test_the_circuit_breaker_state_is_exported():
    from prometheus_client import REGISTRY

    from adapters.llm import LlmClient
    from domain.circuit_breaker import CircuitBreaker

    breaker = CircuitBreaker("test-monitoring", failure_threshold=2, reset_after_s=60)
    LlmClient("http://127.0.0.1:9/v1", "m", breaker=breaker)

    def state():
        return REGISTRY.get_sample_value("recallstack_circuit_breaker_state", {"breaker": "test-monitoring"})

    assert state() == 0
    breaker.record_failure()
    breaker.record_failure()
    assert state() == 2
