"""The LLM prompts, as versioned files: `<name>.v<N>.md` in this folder.

A file is a leading `<!-- ... -->` comment (documentation, not sent), the system prompt,
a line that is exactly `---`, and the user template. The template's `{name}` placeholders
are filled by `fill()` in one pass: the filled-in text is never scanned again, and braces
that are not a bare `{word}` (JSON examples) stay as written, so nothing needs escaping.

A released version is never edited (stored events name the prompt version that produced
them); a change is a new file `v<N+1>`, used by default as the latest.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

PROMPTS_DIR = Path(__file__).resolve().parent
_FILE = re.compile(r"^(?P<name>\w+?)\.v(?P<n>\d+)\.md$")
_COMMENT = re.compile(r"\A\s*<!--.*?-->", re.S)
_SEPARATOR = re.compile(r"^---[ \t]*$", re.M)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class Prompt(NamedTuple):
    system: str
    user_template: str
    version: str  # "v1"

    def render(self, **values: str) -> str:
        return fill(self.user_template, **values)


def fill(template: str, **values: str) -> str:
    """Replace each `{name}` with values[name]; KeyError names a placeholder left without a value."""
    def value(match: re.Match) -> str:
        if match[1] not in values:
            raise KeyError(f"prompt placeholder {{{match[1]}}} has no value")
        return str(values[match[1]])

    return _PLACEHOLDER.sub(value, template)


def versions(name: str) -> list[str]:
    """The versions of a prompt on disk, oldest first: ["v1", "v2", ...]."""
    found = [int(m["n"]) for p in PROMPTS_DIR.iterdir() if (m := _FILE.match(p.name)) and m["name"] == name]
    return [f"v{n}" for n in sorted(found)]


@lru_cache(maxsize=None)
def load_prompt(name: str, version: str | int | None = None) -> Prompt:
    """(system, user_template, version) of prompt `name`, the latest version unless one is given."""
    available = versions(name)
    if not available:
        raise FileNotFoundError(f"no prompt {name!r} in {PROMPTS_DIR}")
    wanted = available[-1] if version is None else f"v{str(version).lstrip('vV')}"
    if wanted not in available:
        raise FileNotFoundError(f"prompt {name!r} has no version {wanted} (has {', '.join(available)})")
    text = _COMMENT.sub("", (PROMPTS_DIR / f"{name}.{wanted}.md").read_text(encoding="utf-8"), count=1)
    parts = _SEPARATOR.split(text, maxsplit=1)
    if len(parts) != 2:
        raise ValueError(f"prompt {name}.{wanted}.md has no '---' line between the system part and the user template")
    return Prompt(parts[0].strip(), parts[1].strip(), wanted)
