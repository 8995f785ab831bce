"""A consume loop's heartbeat read back from a /metrics page (adapters/heartbeat.py): which
loops are quiet for longer than the bound. Pure: the page is text."""

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from adapters import heartbeat


def page(**beats: float) -> str:
    registry = CollectorRegistry()
    gauge = Gauge(heartbeat.METRIC, "test", ["loop"], registry=registry)
    for loop, at in beats.items():
        gauge.labels(loop).set(at)
    return generate_latest(registry).decode()


def test_only_loops_quiet_for_longer_than_the_bound_are_stale():
    text = page(**{"projector-postgres": 1000.0, "worker-extract": 880.0, "projector-neo4j": 999.0})
    assert heartbeat.stale(text, now=1000.0, max_age_s=119) == {"worker-extract": 120.0}
    assert heartbeat.stale(text, now=1000.0, max_age_s=120) == {}


def test_a_page_without_heartbeats_is_not_stale():
    assert heartbeat.stale("# nothing here\n", now=1e9, max_age_s=1) == {}
    assert heartbeat.stale(page(), now=1e9, max_age_s=1) == {}


def test_beat_sets_the_process_gauge_to_now():
    import time

    heartbeat.beat("unit-test-loop")
    from prometheus_client import REGISTRY

    assert abs(REGISTRY.get_sample_value(heartbeat.METRIC, {"loop": "unit-test-loop"}) - time.time()) < 5
