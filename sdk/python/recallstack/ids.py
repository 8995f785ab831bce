"""The shapes of the ids the SDK puts in URLs and bodies, checked before any request.

A memory id is a UUID; user, agent, run and app ids are 1-128 of A-Z a-z 0-9 _ . : @ -,
starting with a letter or digit (the API's own rules, domain/identifiers.py: the SDK is
httpx-only and importable without the server, so the patterns are repeated here and a unit
test keeps the two equal). A value that is not what its argument names is refused with
`InvalidRequest` naming the argument, so nothing a caller (or a prompt-injected agent)
passes can turn a call into a request for another endpoint: `"../../v1/memories"` as a
memory id never reaches the network.
"""

from __future__ import annotations

import re
from typing import Any

from recallstack.errors import InvalidRequest

# Anchored with fullmatch (never `$`, which also matches before a trailing newline).
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def uuid_arg(value: Any, name: str) -> str:
    """`value` as a canonical (lower-case) UUID string; InvalidRequest naming `name` otherwise."""
    if not isinstance(value, str) or not UUID_RE.fullmatch(value):
        raise InvalidRequest(f"{name}: not a UUID (like 6f1c2a9e-0d7b-4c1e-9a55-3e2b8f0a1c44): {_shown(value)}",
                             code="invalid_request", details={"field": name})
    return value.lower()


def id_arg(value: Any, name: str) -> str:
    """`value` if it is a user/agent/run/app id; InvalidRequest naming `name` otherwise."""
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise InvalidRequest(f"{name}: not a valid id (1-128 of A-Z a-z 0-9 _ . : @ -, starting with a letter or "
                             f"digit): {_shown(value)}", code="invalid_request", details={"field": name})
    return value


def optional_id(value: Any, name: str) -> str | None:
    return None if value is None else id_arg(value, name)
