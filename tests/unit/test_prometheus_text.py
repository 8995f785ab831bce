"""adapters/prometheus_text.py: the one reader of /metrics pages `status` and the System page use."""

from adapters.prometheus_text import series

PAGE = '''# HELP recallstack_projector_applied_events_total Events applied.
# TYPE recallstack_projector_applied_events_total counter
recallstack_projector_applied_events_total{projection="postgres"} 41.0
recallstack_projector_applied_events_total{projection="redis",note="a \\"quoted\\" one, {braces}"} 1.5e3
recallstack_projector_applied_events_created{projection="postgres"} 1.7e9
recallstack_projector_applied_events_total_other 99
process_open_fds 12
'''


def test_the_samples_of_exactly_the_named_series_with_their_labels():
    assert list(series(PAGE, "recallstack_projector_applied_events_total")) == [
        ({"projection": "postgres"}, 41.0),
        ({"projection": "redis", "note": 'a \\"quoted\\" one, {braces}'}, 1500.0)]
    assert list(series(PAGE, "process_open_fds")) == [({}, 12.0)]
    assert list(series(PAGE, "recallstack_projector_applied")) == []
    assert list(series("", "process_open_fds")) == []
