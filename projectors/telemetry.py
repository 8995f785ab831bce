"""What a projector says about the events it applied: log lines and trace spans.

Logs: one INFO line per correlation id in a batch ("events applied"), with the correlation
id, the event ids and types, user, partition and offsets: a request's events are found in
every projector's log by its X-Request-ID, and a bulk load of 1,000 events in one request
costs one line, not 1,000 (a JSON line costs ~50 us; per event that would be a fifth of
the projector's time). Ids only, never content.

Spans (when tracing): per record that carries a trace context, a span "apply <EventType>"
(kind consumer) that is a child of the producer span of the request that appended it, so
the request's trace shows each projector's apply. A batch is one read-model transaction,
so every record's span covers the same interval: the batch's, from its start to the
commit. Chosen over one batch span with links: a link does not put the apply in the
request's trace, and "one trace id from request to projector" is the point. Replays make
neither lines nor spans (their events are old; their traces long closed).
"""

from __future__ import annotations

import logging
import time

from opentelemetry import trace

from adapters import observability

log = logging.getLogger("projectors.applied")
MAX_IDS = 20  # event ids listed in one line


def applied(projection: str, topic: str, batch, messages, began_ns: int, replay: bool = False) -> None:
    """After a batch was applied and committed: `batch` the Applied items, `messages` the
    (TopicPartition, record) pairs they came from, `began_ns` when the batch started."""
    if replay:
        return
    spans = _spans(projection, topic, batch, messages, began_ns) if observability.tracing() else {}
    if not log.isEnabledFor(logging.INFO):
        return
    groups: dict[str, list] = {}
    for item in batch:
        if item.event is not None:
            groups.setdefault(item.event.correlation_id, []).append(item)
    for correlation_id, items in groups.items():
        first = items[0]
        fields = {"projection": projection, "topic": topic, "count": len(items),
                  **observability.event_fields(first.event, first.partition, first.offset)}
        if len(items) > 1:
            fields.pop("event_id")
            fields["event_ids"] = [i.event.event_id for i in items[:MAX_IDS]]
            fields["event_types"] = sorted({i.event.event_type for i in items})
            fields["last_offset"] = items[-1].offset
            users = {i.event.user_id for i in items}
            if len(users) > 1:
                fields.pop("user_id")
                fields["users"] = len(users)
        span = spans.get((first.partition, first.offset))
        if span is not None:
            with trace.use_span(span, end_on_exit=False):
                log.info("events applied", extra=fields)
        else:
            log.info("events applied", extra=fields)


def _spans(projection: str, topic: str, batch, messages, began_ns: int) -> dict:
    tracer, ended = observability.tracer(), time.time_ns()
    spans = {}
    for item, (_tp, message) in zip(batch, messages):
        parent = observability.context_from_headers(message.headers)
        if parent is None:
            continue
        event = item.event
        name = f"apply {event.event_type}" if event is not None else "apply (not applied)"
        span = tracer.start_span(name, context=parent, kind=trace.SpanKind.CONSUMER, start_time=began_ns, attributes={
            "messaging.system": "kafka", "messaging.destination.name": topic,
            "messaging.kafka.partition": item.partition, "messaging.kafka.offset": item.offset,
            "recallstack.projection": projection, "recallstack.batch_size": len(batch),
            **({"recallstack.event_id": event.event_id, "recallstack.correlation_id": event.correlation_id}
               if event is not None else {})})
        if event is None:  # dead-lettered or its user erased: the position moved, nothing applied
            span.set_status(trace.Status(trace.StatusCode.ERROR, "not applied"))
        span.end(end_time=ended)
        spans[(item.partition, item.offset)] = span
    return spans
