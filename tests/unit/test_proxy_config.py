"""The reverse proxy's nginx.conf (infra/proxy_config.py, infra/proxy_server.py): rendered from
the settings, everything it writes inside the home, limits equal to the APIs' own. Its behaviour
(routing, refusals, limits, timeouts) is tested against a running nginx in tests/security/test_proxy.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.routes import COMMAND, QUERY, WEB_EDGE
from infra import proxy_config, proxy_server
from infra.proxy_config import ProxyConfig, compose_config, render
from infra.stack import MAX_REQUEST_HEAD, UVICORN_KEEP_ALIVE_S, api_ports, service_specs
from settings import Settings

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("RECALLSTACK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RECALLSTACK_API_PROCESSES", "3")
    return Settings.from_env()


def test_the_stack_config_lists_every_api_process_and_keeps_its_files_in_the_home(settings):
    text = render(proxy_server.proxy_config(settings))
    home = str(settings.home)
    assert "daemon off;" in text and "master_process on;" in text
    for port in (8081, 8181, 8281):
        assert f"server 127.0.0.1:{port};" in text
    for port in (8082, 8182, 8282):
        assert f"server 127.0.0.1:{port};" in text
    assert "server 127.0.0.1:8083;" in text and "listen 127.0.0.1:8080 default_server;" in text
    paths = re.findall(r"^\s*(?:pid|lock_file|\w+_temp_path|access_log)\s+(/\S+?);?\s", text, re.M)
    assert len(paths) == 8 and all(path.startswith(home) for path in paths), paths
    assert "error_log stderr" in text  # the process's log file (logs/proxy.log)


def test_api_processes_take_the_port_plus_100_per_process():
    assert api_ports(8081, 1) == [8081]
    assert api_ports(8082, 3) == [8082, 8182, 8282]


def test_service_specs_expand_each_api_into_its_processes(settings):
    names = [spec.name for spec in service_specs(settings, ("command-api", "query-api", "web-edge", "proxy"))]
    assert names == ["command-api", "command-api-2", "command-api-3", "query-api", "query-api-2", "query-api-3",
                     "web-edge", "proxy"]
    ports = {spec.name: spec.port for spec in service_specs(settings, ("query-api",), api_processes=2)}
    assert ports == {"query-api": 8082, "query-api-2": 8182}


def test_the_api_processes_setting_is_bounded(monkeypatch):
    monkeypatch.setenv("RECALLSTACK_API_PROCESSES", "0")
    with pytest.raises(ValueError, match="RECALLSTACK_API_PROCESSES"):
        Settings.from_env()


def test_upstream_connections_idle_out_at_the_proxy_before_uvicorn_closes_them(settings):
    assert proxy_config.UPSTREAM_KEEPALIVE_S < UVICORN_KEEP_ALIVE_S
    text = render(proxy_server.proxy_config(settings))
    assert f"keepalive_timeout {proxy_config.UPSTREAM_KEEPALIVE_S}s;" in text
    assert "proxy_http_version 1.1;" in text and 'proxy_set_header Connection "";' in text
    uvicorn = next(spec for spec in service_specs(settings, ("command-api",)) if spec.name == "command-api").argv
    assert uvicorn[uvicorn.index("--timeout-keep-alive") + 1] == str(UVICORN_KEEP_ALIVE_S)


def test_body_and_head_limits_are_the_apis_own():
    from command_api.app import BODY_LIMITS, DEFAULT_BODY_LIMIT

    assert proxy_config.BODY_LIMITS == BODY_LIMITS and proxy_config.DEFAULT_BODY_LIMIT == DEFAULT_BODY_LIMIT
    assert proxy_config.HEADER_BUFFER * proxy_config.HEADER_BUFFERS == MAX_REQUEST_HEAD
    # The documented longest `filters` (16,384 four-byte characters, 12 bytes each percent-encoded) fits a request line.
    assert proxy_config.HEADER_BUFFER > 16_384 * 12 + 4096


def test_the_worker_user_is_named_only_for_a_root_master(settings, monkeypatch):
    monkeypatch.setattr(proxy_server.os, "geteuid", lambda: 1000)
    assert proxy_server.worker_user() is None
    assert "\nuser " not in render(proxy_server.proxy_config(settings))
    monkeypatch.setattr(proxy_server.os, "geteuid", lambda: 0)
    monkeypatch.setattr(proxy_server.os, "getegid", lambda: 0)
    assert proxy_server.worker_user() == "root root"
    assert "\nuser root root;\n" in render(proxy_server.proxy_config(settings))


def test_every_upstream_group_needs_a_server():
    with pytest.raises(ValueError):
        ProxyConfig(listen="127.0.0.1:1", upstreams={COMMAND: ["a:1"], QUERY: []}, prefix="/tmp/x")


def test_every_answer_of_the_proxy_itself_is_the_json_error_shape():
    import json

    text = render(ProxyConfig(listen="127.0.0.1:1", upstreams={COMMAND: ["a:1"], QUERY: ["b:1"], WEB_EDGE: ["c:1"]},
                              prefix="/tmp/x"))
    bodies = re.findall(r"return (\d{3}) '(.*)';", text)
    assert {status for status, _ in bodies} >= {"200", "400", "404", "405", "408", "413", "414", "431", "500", "503",
                                                "504"}
    for status, body in bodies:
        doc = json.loads(body.replace("$request_method", "GET").replace("$route_name", "the query API")
                         .replace("$route", "query"))
        assert status == "200" or set(doc["error"]) == {"code", "message", "details"}, body
    assert "Retry-After" in text.split("location = /.recallstack-proxy-errors/503")[1].split("}")[0]


def test_the_compose_file_is_the_rendered_one():
    assert (REPO / proxy_config.COMPOSE_FILE).read_text() == compose_config(), \
        f"regenerate it: python -m infra.proxy_config > {proxy_config.COMPOSE_FILE}"
    compose = (REPO / "compose.yaml").read_text()
    assert proxy_config.COMPOSE_FILE in compose


def test_down_and_status_find_every_api_process_that_runs(tmp_path):
    from infra.process import ProcessTable
    from infra.stack import recorded_api_processes

    table = ProcessTable(tmp_path)
    assert recorded_api_processes(table) == 0
    tmp_path.joinpath("proxy.json").write_text("{}")
    tmp_path.joinpath("command-api.json").write_text("{}")
    assert recorded_api_processes(table) == 1
    tmp_path.joinpath("query-api-3.json").write_text("{}")
    tmp_path.joinpath("query-api-x.json").write_text("{}")
    assert recorded_api_processes(table) == 3
