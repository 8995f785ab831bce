"""The Neo4j launcher takes any generated password. `secrets.token_urlsafe` starts one in 64
with '-', which Neo4j's set-initial-password command read as an unknown option: the first
start failed and CI with it. The launcher now ends the options before the password, and
settings never generates such a password again; this starts a throwaway Neo4j with one."""

from __future__ import annotations

import socket

import pytest
from neo4j import GraphDatabase

from infra import neo4j_server
from infra.process import ProcessTable, start, stop

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_neo4j_first_start_takes_a_password_that_starts_with_a_dash(tmp_path):
    password, port = "-Ab3_dash-first-password", _free_port()
    uri = f"bolt://127.0.0.1:{port}"
    processes = ProcessTable(tmp_path / "run")
    spec = neo4j_server.spec(tmp_path, uri, "neo4j", password, "256m")
    try:
        _, started, _ = start(spec, processes)
        assert started
        with GraphDatabase.driver(uri, auth=("neo4j", password)) as driver:
            records, _, _ = driver.execute_query("RETURN 41 + 1 AS answer")
        assert records[0]["answer"] == 42
    finally:
        stop("neo4j", processes)
