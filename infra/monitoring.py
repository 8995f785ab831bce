"""Prometheus for the local stack (`recallstack up --with-monitoring`): Debian's /usr/bin/prometheus
as a child process on 127.0.0.1:9090, scraping every process of the stack on its loopback port,
with the alert and recording rules of infra/monitoring/rules/ (the same files compose.yaml mounts).

The scrape jobs are listed once here (SCRAPE_JOBS); infra/monitoring/prometheus.yml (compose)
names the same jobs with container host names, which a test checks.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from infra.process import ProcessSpec, StartError
from settings import (COMMAND_API_PORT, PROJECTOR_METRICS_PORTS, PROMETHEUS_PORT, QUERY_API_PORT, WEB_EDGE_PORT,
                      WORKER_METRICS_PORTS)
MONITORING_DIR = Path(__file__).resolve().parent / "monitoring"
RULES_DIR = MONITORING_DIR / "rules"
SCRAPE_INTERVAL = "15s"


def scrape_jobs(command_api_port: int = COMMAND_API_PORT, query_api_port: int = QUERY_API_PORT,
                web_edge_port: int = WEB_EDGE_PORT,
                api_processes: int = 1) -> list[dict]:
    """[{job, port, component}]: every process of the stack that serves /metrics. The job is the
    process name of `recallstack status` (and the compose service); component groups them for alerts.
    An API of several processes is one job with a target each (`ports`). The reverse proxy has no
    Prometheus endpoint: what passes through it is counted by the APIs."""
    from infra.stack import api_ports

    return [
        {"job": "web-edge", "port": web_edge_port, "component": "api"},
        {"job": "command-api", "port": command_api_port, "component": "api",
         "ports": api_ports(command_api_port, api_processes)},
        {"job": "query-api", "port": query_api_port, "component": "api", "ports": api_ports(query_api_port, api_processes)},
        *({"job": f"projector-{name}", "port": port, "component": "projector"}
          for name, port in PROJECTOR_METRICS_PORTS.items()),
        *({"job": f"worker-{name}", "port": port, "component": "worker"}
          for name, port in WORKER_METRICS_PORTS.items()),
    ]


def config_text(jobs: list[dict], host_of, rule_files: list[str]) -> str:
    """A prometheus.yml scraping `jobs` at host_of(job) (YAML written by hand: no dependency)."""
    lines = ["global:", f"  scrape_interval: {SCRAPE_INTERVAL}", f"  evaluation_interval: {SCRAPE_INTERVAL}",
             "  external_labels:", "    stack: recallstack", "", "rule_files:"]
    lines += [f"  - {path}" for path in rule_files]
    lines += ["", "scrape_configs:"]
    for job in jobs:
        lines += [f"  - job_name: {job['job']}", "    metrics_path: /metrics", "    static_configs:",
                  "      - targets: [" + ", ".join(f'"{host_of(job)}:{port}"' for port in job.get("ports", [job["port"]]))
                  + "]",
                  f"        labels: {{component: {job['component']}}}"]
    return "\n".join(lines) + "\n"


def _probe(port: int) -> str:
    answer = httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=2)
    if answer.status_code != 200:
        raise StartError(f"prometheus /-/ready answered {answer.status_code}")
    targets = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=2).json()["data"]["activeTargets"]
    up = sum(t["health"] == "up" for t in targets)
    return f"{up}/{len(targets)} targets up"


def spec(home: Path, cfg=None, port: int = PROMETHEUS_PORT) -> ProcessSpec:
    """Prometheus with a config generated under <home>/prometheus/ for the local ports."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise StartError("prometheus: not found; install Debian's prometheus package (`make install` does)")
    base = home / "prometheus"
    first_start = not (base / "data").exists()
    (base / "data").mkdir(parents=True, exist_ok=True)
    ports = {} if cfg is None else {"command_api_port": cfg.command_api_port, "query_api_port": cfg.query_api_port,
                                    "web_edge_port": cfg.web_edge_port, "api_processes": cfg.api_processes}
    config = base / "prometheus.yml"
    config.write_text(config_text(scrape_jobs(**ports), lambda job: "127.0.0.1",
                                  [str(p) for p in sorted(RULES_DIR.glob("*.rules.yml"))]))
    argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={base / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=15d"]
    return ProcessSpec(name="prometheus", argv=argv, log_file=home / "logs" / "prometheus.log", port=port,
                       ready_timeout=30, probe=lambda: _probe(port), first_start=first_start)


def recorded_specs(cfg, processes) -> list[ProcessSpec]:
    """[the Prometheus spec] when `up --with-monitoring` started one that still runs, else []:
    `down` stops it and `status` lists it, and a stack without monitoring is not reported short."""
    if processes.pid("prometheus") is None:
        return []
    return [spec(cfg.home, cfg)]


def compose_config() -> str:
    """infra/monitoring/prometheus.yml: the same jobs, by compose service name."""
    header = ("# Prometheus for compose.yaml (generated by infra/monitoring.py:compose_config; a test checks it).\n"
              "# `recallstack up --with-monitoring` writes the same jobs with 127.0.0.1 targets.\n")
    return header + config_text(scrape_jobs(), lambda job: job["job"], ["/etc/prometheus/rules/recallstack.rules.yml"])
