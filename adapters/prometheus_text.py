"""The series of a /metrics page in Prometheus's text format, read without a full parse:
`recallstack status`, the web UI's System page and the supervisor's heartbeat check each want
one or two series of pages that carry hundreds (prometheus_client's parser builds every
family, several times slower)."""

from __future__ import annotations

import re
from collections.abc import Iterator

_LINE = re.compile(r'^(\w+)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def series(text: str, name: str) -> Iterator[tuple[dict[str, str], float]]:
    """(labels, value) of each sample of the series called exactly `name`."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = _LINE.match(line)
        if match and match.group(1) == name:
            yield dict(_LABEL.findall(match.group(2) or "")), float(match.group(3))
