"""The supervisor's liveness checks against the real Kafka, Postgres, Neo4j and Redis: each
server answers its protocol's smallest request; a port nothing listens on fails."""

import socket

import pytest

from infra import liveness, stack

pytestmark = pytest.mark.integration


def test_each_infrastructure_server_answers_its_liveness_check(settings):
    specs = stack.infra_specs(settings)
    assert specs, "every server is external: nothing to check"
    for spec in specs:
        assert spec.liveness().startswith("answers"), spec.name


@pytest.mark.parametrize("protocol", sorted(liveness.CHECKS))
def test_a_port_nobody_listens_on_fails(protocol):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(OSError):
            liveness.CHECKS[protocol]("127.0.0.1", port)


@pytest.mark.parametrize("protocol", sorted(liveness.CHECKS))
def test_a_server_that_accepts_and_says_nothing_fails_within_the_timeout(protocol, monkeypatch):
    monkeypatch.setattr(liveness, "TIMEOUT_S", 0.3)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()  # the kernel accepts for us; nothing reads or answers: a hung server
        with pytest.raises(OSError):
            liveness.CHECKS[protocol]("127.0.0.1", server.getsockname()[1])
