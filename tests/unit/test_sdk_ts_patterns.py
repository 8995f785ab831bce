"""The TypeScript SDK checks ids before sending (sdk/typescript/src/ids.ts) with the API's own patterns
(domain/identifiers.py); it cannot import them, so this test keeps the copies equal."""

from __future__ import annotations

import re
from pathlib import Path

from domain import identifiers

IDS_TS = Path(__file__).resolve().parents[2] / "sdk" / "typescript" / "src" / "ids.ts"


def regex_literal(name: str) -> str:
    found = re.search(rf"^export const {name} = /(.+)/;$", IDS_TS.read_text(), re.M)
    assert found, f"{name} not found in {IDS_TS}"
    return found.group(1)


def test_the_typescript_sdk_patterns_are_the_apis():
    assert regex_literal("UUID_RE") == identifiers.UUID_PATTERN
    assert regex_literal("ID_RE") == identifiers.ID_PATTERN
