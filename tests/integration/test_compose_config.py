"""compose.yaml describes the same stack for Docker users; it must parse."""

import shutil
import subprocess

import yaml

from tests.conftest import REPO


def test_compose_config_is_valid_and_has_the_whole_stack():
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose (Debian package) is required; `make install` installs it"
    result = subprocess.run([binary, "-f", str(REPO / "compose.yaml"), "config"], capture_output=True, text=True,
                            cwd=REPO, env={"PATH": "/usr/bin:/bin", "NEO4J_PASSWORD": "x", "PG_PASSWORD": "x",
                                 "KEYSTORE_MASTER_KEY": "x", "GRAFANA_ADMIN_PASSWORD": "x"})
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"kafka", "postgres", "neo4j", "redis", "command-api", "query-api", "projector-postgres",
            "web-edge", "proxy", "worker-extract", "worker-consolidate", "worker-forget", "prometheus",
            "grafana"} <= set(services)
    published = {str(p).split(":")[1] for s in services.values() for p in s.get("ports", [])}
    assert {"8080", "8081", "8082", "8083", "9092", "5433", "7687", "6380", "9090", "3000"} <= published
    assert all(str(p).startswith("127.0.0.1:") for s in services.values() for p in s.get("ports", [])), \
        "every port is published on loopback only"


def test_compose_monitoring_mounts_the_repository_files():
    """Prometheus and Grafana read infra/monitoring/ (checked in tests/unit/test_monitoring_config.py)."""
    services = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            if volume.startswith("./"):
                assert (REPO / volume.split(":")[0]).exists(), f"{name} mounts {volume}, which is missing"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    assert "${GRAFANA_ADMIN_PASSWORD:?" in services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"], \
        "no default admin password"


def test_compose_traces_go_to_jaeger_when_asked():
    """`--profile tracing` adds Jaeger; RECALLSTACK_TRACING=otlp sends every service's spans there."""
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    jaeger = compose["services"]["jaeger"]
    assert jaeger["profiles"] == ["tracing"] and jaeger["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    env = compose["x-recallstack"]["environment"]
    assert env["RECALLSTACK_TRACING"] == "${RECALLSTACK_TRACING:-off}"
    assert env["RECALLSTACK_OTLP_ENDPOINT"].endswith("http://jaeger:4318}")


def test_compose_proxy_runs_nginx_with_the_repository_config():
    """The base URL is the official nginx image with infra/proxy/nginx.compose.conf (rendered by
    infra/proxy_config.py, checked in tests/unit/test_proxy_config.py); its config says
    `daemon off`, so the command must not add it again."""
    services = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]
    proxy = services["proxy"]
    assert proxy["image"].startswith("nginx:") and proxy["ports"] == ["127.0.0.1:8080:8080"]
    [mount] = proxy["volumes"]
    source, target = mount.split(":")[:2]
    assert (REPO / source).is_file() and proxy["command"][:3] == ["nginx", "-c", target]
    assert "daemon" not in " ".join(proxy["command"])
    assert services["web-edge"]["environment"]["RECALLSTACK_GATEWAY_URL"] == "http://proxy:8080"
