"""Hostile values through every request shape of the command API that carries a free value,
into every read model (issue 19, item 3): nothing the API acknowledges may be dead-lettered.

Each case sends one hostile value in one place of one request shape (add with text, with
messages, with messages for extraction, batch, PATCH, share, restore, keys, users,
revocation). The answer must be one of:
- refused: a 4xx JSON error naming the field, and the log exactly as it was;
- accepted: 2xx with a consistency token, and then every read model applies it: the memory
  (key, share) reads back through the query API with the token, holding what was sent, and
  once the Postgres, Redis, Neo4j and sparse projectors (and the extraction worker, for a
  conversation) went past the run's writes, the dead-letter topic got nothing from them.
Most cases also pin which of the two the value gets (`expect`), so a rule cannot silently
loosen; a 5xx is always a failure.

All cases run once (a module fixture: the projectors are waited for once), then each case
is its own test, named after the value and the place.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import unicodedata
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from domain.identifiers import ID_PATTERN
from projectors import dead_letters
from projectors.lag import group_of
from settings import EVENTS_PARTITIONS, EVENTS_TOPIC, EXTRACT_GROUP, PROJECTIONS
from tests.e2e.conftest import admin_headers

pytestmark = pytest.mark.e2e

RUN = uuid.uuid4().hex[:8]
V = "@HOSTILE@"  # where a raw JSON literal is spliced into a body (json.dumps cannot write NaN or 1e400)
REFUSED, ACCEPTED = "refused", "accepted"


@dataclass
class Case:
    name: str
    method: str
    path: str  # {memory} and {key} are the case's own memory and key, made beforehand
    body: Any = None  # JSON value (V where the literal goes), or raw text (str), or None
    literal: str | None = None  # the raw JSON text that replaces V
    params: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    expect: str | None = None  # REFUSED, ACCEPTED, or None: either is fine (but nothing lost)
    names: str | None = None  # what a refusal must name (the field)
    read: tuple = ()  # accepted: (path in the memory read back, the value expected there)
    user: str = ""
    needs: tuple = ()  # "memory", "key": made for the case beforehand
    item: int = 0  # accepted: which of the answer's results is the memory to read back

    def text(self) -> str | None:
        """The body as sent: the case's user filled in where the shape takes one in the body."""
        body = self.body
        if isinstance(body, dict):
            body = dict(body)
            if self.path == "/v1/memories/batch":
                body["memories"] = [{"user_id": self.user, **item} for item in body["memories"]]
            elif self.method == "POST" and self.path in ("/v1/memories", "/v1/keys", "/v1/users"):
                body = {"user_id": self.user, **body}
            text = json.dumps(body)
            return text.replace(json.dumps(V), self.literal) if self.literal is not None else text
        if isinstance(body, str) and self.method == "POST" and self.path in ("/v1/memories", "/v1/keys", "/v1/users"):
            return body.replace("{", f'{{"user_id": "{self.user}", ', 1)
        if isinstance(body, str) and self.path == "/v1/memories/batch":
            return body.replace('{"text"', f'{{"user_id": "{self.user}", "text"')
        return body

    def query(self) -> dict:
        params = dict(self.params)
        if self.method != "POST" or self.path.endswith(("/restore", "/shares")):
            params.setdefault("user_id", self.user)
        return params


# --- the hostile values ------------------------------------------------------------------------

# name -> (JSON literal, a finite double a read model can hold, else None)
NUMBERS = {
    "NaN": ("NaN", None), "Infinity": ("Infinity", None), "-Infinity": ("-Infinity", None),
    "1e400": ("1e400", None), "-1e400": ("-1e400", None), "10**400 (integer)": (str(10 ** 400), None),
    "1e308": ("1e308", 1e308), "-1e308": ("-1e308", -1e308), "5e-324": ("5e-324", 5e-324),
    "1e-400 (underflow)": ("1e-400", 0.0), "-0.0": ("-0.0", 0.0), "2**63": (str(2 ** 63), 2 ** 63),
    "2**64": (str(2 ** 64), 2 ** 64), "-2**63-1": (str(-2 ** 63 - 1), -2 ** 63 - 1),
    "10**100 (integer)": (str(10 ** 100), 10 ** 100),
}
# name -> (text, whether stored text can hold it)
STRINGS = {
    "NUL": ("\x00", False), "NUL inside": ("a\x00b", False), "lone high surrogate": ("x\ud800", False),
    "lone low surrogate": ("\udfffx", False), "U+FFFF": ("a\uffff", True), "U+FFFE": ("\ufffeb", True),
    "RTL override": ("\u202eevil.exe", True), "zero-width space": ("a\u200bb", True), "emoji": ("ok \U0001f600", True),
    "byte order mark": ("\ufeffbom", True), "combining accent": ("e\u0301", True), "number as string": ("1e400", True),
    "NaN as string": ("NaN", True), "dollar": ("$where", True), "dots": ("a.b.c", True),
    "SQL": ("'); DROP TABLE memories;--", True), "Cypher": ("'}) DETACH DELETE n //", True),
    "Lua/JSON": ('"]} cjson {"', True), "percent": ("%00%2e%2e", True),
}
DEEP = {"33 levels (over the body limit)": 33, "500 levels": 500, "100,000 levels": 100_000}


def nested(levels: int, leaf: str = "1", key: str = "a") -> str:
    """`levels` objects nested, as raw JSON text (json.dumps itself would recurse too deep)."""
    return f'{{"{key}": ' * levels + leaf + "}" * levels


def _same(sent: Any, stored: Any) -> bool:
    """JSON equality, numbers compared as numbers (Postgres jsonb gives 1e308 back as an integer)."""
    if isinstance(sent, bool) or isinstance(stored, bool):
        return sent is stored
    if isinstance(sent, (int, float)) and isinstance(stored, (int, float)):
        return sent == stored or float(sent) == float(stored)
    if isinstance(sent, dict) and isinstance(stored, dict):
        return sent.keys() == stored.keys() and all(_same(v, stored[k]) for k, v in sent.items())
    if isinstance(sent, list) and isinstance(stored, list):
        return len(sent) == len(stored) and all(_same(a, b) for a, b in zip(sent, stored))
    return sent == stored


# --- the table -----------------------------------------------------------------------------------

def _cases(embedding_model: str, dim: int) -> list[Case]:
    cases: list[Case] = []

    def add(name, method, path, body=None, **kw):
        cases.append(Case(name=name, method=method, path=path, body=body, **kw))

    text = {"text": "a plain fact", "infer": False}
    patch = "/v1/memories/{memory}"
    # Numbers: in metadata (any depth), importance, a vector, a batch item, a PATCH, a flag, a scope list.
    for name, (literal, finite) in NUMBERS.items():
        ok = ACCEPTED if finite is not None else REFUSED
        add(f"add metadata.x = {name}", "POST", "/v1/memories", {**text, "metadata": {"x": V}}, literal=literal,
            expect=ok, names="metadata.x", read=(("metadata", "x"), finite))
        add(f"add metadata nested list = {name}", "POST", "/v1/memories", {**text, "metadata": {"x": [1, {"y": V}]}},
            literal=literal, expect=ok, names="metadata.x.1.y", read=(("metadata", "x", 1, "y"), finite))
        in_unit = finite is not None and 0 <= finite <= 1
        add(f"add importance = {name}", "POST", "/v1/memories", {**text, "importance": V}, literal=literal,
            expect=ACCEPTED if in_unit else REFUSED, names="importance")  # stored as float32: 5e-324 reads 0
        add(f"add embedding.0 = {name}", "POST", "/v1/memories",
            {**text, "embedding": [V] + [0.0] * (dim - 1), "embedding_model": embedding_model}, literal=literal,
            expect=REFUSED, names="embedding")  # never L2-normalised
        add(f"batch memories.1.metadata.x = {name}", "POST", "/v1/memories/batch",
            {"memories": [text, {**text, "metadata": {"x": V}}, text]}, literal=literal, expect=ok,
            names="memories.1.metadata.x", read=(("metadata", "x"), finite), item=1)
        add(f"batch memories.1.importance = {name}", "POST", "/v1/memories/batch",
            {"memories": [text, {**text, "importance": V}]}, literal=literal,
            expect=ACCEPTED if in_unit else REFUSED, names="memories.1.importance")
        add(f"patch metadata.x = {name}", "PATCH", patch, {"metadata": {"x": V}}, literal=literal, expect=ok,
            names="metadata.x", read=(("metadata", "x"), finite), needs=("memory",))
        add(f"patch importance = {name}", "PATCH", patch, {"importance": V}, literal=literal,
            expect=ACCEPTED if in_unit else REFUSED, names="importance", needs=("memory",))
        add(f"conversation metadata.x = {name}", "POST", "/v1/memories",
            {"messages": [{"role": "user", "content": "My sister Ana moved to Porto"}], "infer": True,
             "metadata": {"x": V}}, literal=literal, expect=ok, names="metadata.x")
        add(f"user is_admin = {name}", "POST", "/v1/users", {"display_name": "hostile", "is_admin": V},
            literal=literal, expect=REFUSED if finite is None or finite not in (0,) else None, names="is_admin")
        add(f"key scopes.0 = {name}", "POST", "/v1/keys", {"scopes": [V]}, literal=literal, expect=REFUSED,
            names="scopes")
        add(f"add occurred_at = {name}", "POST", "/v1/memories", {**text, "occurred_at": V}, literal=literal,
            expect=REFUSED if finite is None or abs(finite) > 2 ** 40 else None, names="occurred_at")

    # Strings: every free text field of every shape.
    for name, (value, storable) in STRINGS.items():
        ok = ACCEPTED if storable else REFUSED
        stored = unicodedata.normalize("NFC", value)  # texts are stored NFC-normalised (documented)
        an_id = re.fullmatch(ID_PATTERN, value) is not None  # "NaN", "a.b.c" are plausible ids
        add(f"add text = {name}", "POST", "/v1/memories", {"text": value, "infer": False}, expect=ok, names="text",
            read=(("memory",), stored))
        add(f"add message content = {name}", "POST", "/v1/memories",
            {"messages": [{"role": "user", "content": value}], "infer": False}, expect=ok, names="messages.0.content",
            read=(("memory",), stored))
        add(f"conversation message content = {name}", "POST", "/v1/memories",
            {"messages": [{"role": "user", "content": value}], "infer": True}, expect=ok, names="messages.0.content")
        add(f"add metadata value = {name}", "POST", "/v1/memories", {**text, "metadata": {"k": value}}, expect=ok,
            names="metadata.k", read=(("metadata", "k"), value))
        add(f"add metadata key = {name}", "POST", "/v1/memories", {**text, "metadata": {value: 1}},
            expect=ok, names="metadata", read=(("metadata", value), 1))
        add(f"add categories.0 = {name}", "POST", "/v1/memories", {**text, "categories": [value]}, expect=ok,
            names="categories")
        add(f"add agent_id = {name}", "POST", "/v1/memories", {**text, "agent_id": value},
            expect=ACCEPTED if an_id else REFUSED, names="agent_id", read=(("agent_id",), value))
        add(f"batch memories.1.text = {name}", "POST", "/v1/memories/batch",
            {"memories": [text, {"text": value, "infer": False}]}, expect=ok, names="memories.1.text")
        add(f"batch memories.0.metadata key = {name}", "POST", "/v1/memories/batch",
            {"memories": [{**text, "metadata": {value: [value]}}, text]}, expect=ok, names="memories.0.metadata")
        add(f"patch text = {name}", "PATCH", patch, {"text": value}, expect=ok, names="text",
            read=(("memory",), stored), needs=("memory",))
        add(f"patch metadata key = {name}", "PATCH", patch, {"metadata": {value: value}}, expect=ok,
            names="metadata", read=(("metadata", value), value), needs=("memory",))
        add(f"patch categories.0 = {name}", "PATCH", patch, {"categories": [value]}, expect=ok, names="categories",
            needs=("memory",))
        add(f"share grantee_user_id = {name}", "POST", "/v1/memories/{memory}/shares", {"grantee_user_id": value},
            expect=REFUSED, names="grantee_user_id", needs=("memory",))  # an id nobody registered is refused too
        add(f"key name = {name}", "POST", "/v1/keys", {"scopes": ["read"], "name": value}, expect=ok, names="name")
        add(f"user display_name = {name}", "POST", "/v1/users", {"display_name": value}, expect=ok,
            names="display_name")
        if "\ud800" not in value and "\udfff" not in value:  # a URL cannot carry a lone surrogate
            add(f"revoke reason = {name}", "DELETE", "/v1/keys/{key}", params={"reason": value},
                expect=ACCEPTED if storable else REFUSED, names="reason", needs=("key",))
            add(f"restore user_id = {name}", "POST", "/v1/memories/{memory}/restore", params={"user_id": value},
                expect=REFUSED, names=None if an_id else "user_id", needs=("memory",))  # an id: not theirs, 404

    # Lengths: at each limit (accepted) and one over (refused; 413 where the limit is a size).
    lengths = [  # (where, limit, body of n, what reads back)
        ("text", 32_000, lambda n: {"text": "x" * n, "infer": False}, lambda n: (("memory",), "x" * n)),
        ("text (emoji)", 32_000, lambda n: {"text": "\U0001f600" * n, "infer": False},
         lambda n: (("memory",), "\U0001f600" * n)),
        ("messages.0.content", 32_000, lambda n: {"messages": [{"role": "user", "content": "y" * n}], "infer": False},
         lambda n: (("memory",), "y" * n)),
        ("metadata key", 128, lambda n: {**text, "metadata": {"k" * n: 1}}, lambda n: (("metadata", "k" * n), 1)),
        ("categories.0", 64, lambda n: {**text, "categories": ["c" * n]}, lambda n: (("categories",), ["c" * n])),
        ("agent_id", 128, lambda n: {**text, "agent_id": "a" * n}, lambda n: (("agent_id",), "a" * n)),
        ("messages", 200, lambda n: {"messages": [{"role": "user", "content": "m"}] * n, "infer": False},
         lambda n: (("memory",), "m")),
        ("metadata depth", 5, lambda n: {**text, "metadata": json.loads(nested(n))},
         lambda n: (("metadata",), json.loads(nested(n)))),
    ]
    for where, limit, body, read in lengths:
        add(f"add {where} at the limit ({limit})", "POST", "/v1/memories", body(limit), expect=ACCEPTED,
            read=read(limit))
        add(f"add {where} over the limit ({limit + 1})", "POST", "/v1/memories", body(limit + 1), expect=REFUSED,
            names=where.split(" ")[0])
    add("add metadata of 16 KiB + 1", "POST", "/v1/memories", {**text, "metadata": {"b": "y" * 16_380}},
        expect=REFUSED, names="metadata")
    add("patch text over the limit", "PATCH", patch, {"text": "z" * 32_001}, expect=REFUSED, names="text",
        needs=("memory",))
    add("key name at the limit (128)", "POST", "/v1/keys", {"scopes": ["read"], "name": "n" * 128}, expect=ACCEPTED)
    add("key name over the limit (129)", "POST", "/v1/keys", {"scopes": ["read"], "name": "n" * 129}, expect=REFUSED,
        names="name")
    add("user display_name at the limit (256)", "POST", "/v1/users", {"display_name": "d" * 256}, expect=ACCEPTED)
    add("user display_name over the limit (257)", "POST", "/v1/users", {"display_name": "d" * 257}, expect=REFUSED,
        names="display_name")
    # Texts whose extracted entities are long (the graph's name index has a key size limit).
    for name, value in [("a 20,000-character code identifier", "uses `" + "a" * 20_000 + "` daily"),
                        ("a 30,000-character URL", "see https://example.com/" + "p" * 30_000),
                        ("a 20,000-character file path", "edit /" + "/".join(["dir"] * 5_000) + ".py"),
                        ("a 20,000-character name", "Alice met " + " ".join(["Bob"] * 5_000) + " today"),
                        ("a 20,000-character email", "mail " + "a" * 20_000 + "@example.com now")]:
        add(f"add text with {name}", "POST", "/v1/memories", {"text": value, "infer": False}, expect=ACCEPTED,
            read=(("memory",), value))
        add(f"patch text with {name}", "PATCH", patch, {"text": value}, expect=ACCEPTED, read=(("memory",), value),
            needs=("memory",))

    # Nesting: the body's limit (32 levels), checked before parsing, whatever the field.
    for name, levels in DEEP.items():
        deep = nested(levels)
        add(f"add metadata nested {name}", "POST", "/v1/memories", '{"text": "deep", "infer": false, "metadata": '
            + deep + "}", expect=REFUSED, names="metadata.a")
        add(f"add text nested {name}", "POST", "/v1/memories", '{"infer": false, "text": ' + "[" * levels
            + "]" * levels + "}", expect=REFUSED, names="text.0")
        add(f"batch memories.2.metadata nested {name}", "POST", "/v1/memories/batch",
            '{"memories": [{"text": "a"}, {"text": "b"}, {"text": "c", "metadata": ' + deep + "}]}", expect=REFUSED,
            names="memories.2.metadata.a")
        add(f"patch metadata nested {name}", "PATCH", patch, '{"metadata": ' + deep + "}", expect=REFUSED,
            names="metadata.a", needs=("memory",))
        add(f"key name nested {name}", "POST", "/v1/keys", '{"scopes": ["read"], "name": ' + deep + "}",
            expect=REFUSED, names="name.a")

    # Keys: empty, dotted, operators; null, booleans and strings where other types go.
    for name, metadata in [("empty key", {"": 1}), ("dotted key", {"a.b": {"c.d": 2}}), ("$ keys", {"$where": "1", "$gt": 2}),
                           ("null values", {"a": None, "b": [None]}), ("booleans", {"t": True, "f": [False]}),
                           ("empty containers", {"o": {}, "l": []}), ("unicode keys", {"\u202e\u200b\U0001f600": "x"})]:
        add(f"add metadata with {name}", "POST", "/v1/memories", {**text, "metadata": metadata}, expect=ACCEPTED,
            read=(("metadata",), metadata))
        add(f"patch metadata with {name}", "PATCH", patch, {"metadata": metadata}, expect=ACCEPTED,
            read=(("metadata",), metadata), needs=("memory",))
    for name, body, expect, names in [
        ("text null", {"text": None, "infer": False}, REFUSED, "text"),
        ("metadata null", {**text, "metadata": None}, REFUSED, "metadata"),
        ("categories null", {**text, "categories": None}, REFUSED, "categories"),
        ("categories.0 null", {**text, "categories": [None]}, REFUSED, "categories.0"),
        ("importance null", {**text, "importance": None}, ACCEPTED, None),
        ("occurred_at null", {**text, "occurred_at": None}, ACCEPTED, None),
        ("agent_id null", {**text, "agent_id": None}, ACCEPTED, None),
        ("messages.0 null", {"messages": [None], "infer": False}, REFUSED, "messages.0"),
        ("messages.0.content null", {"messages": [{"role": "user", "content": None}], "infer": False}, REFUSED,
         "messages.0.content"),
        ("embedding null without a model", {**text, "embedding": None}, ACCEPTED, None),
        ("infer null", {"messages": [{"role": "user", "content": "x"}], "infer": None}, ACCEPTED, None),
        ("importance true", {**text, "importance": True}, None, "importance"),
        ("importance as string 0.5", {**text, "importance": "0.5"}, None, "importance"),
        ("importance as string NaN", {**text, "importance": "NaN"}, REFUSED, "importance"),
        ("importance as string Infinity", {**text, "importance": "Infinity"}, REFUSED, "importance"),
        ("importance as string 1e400", {**text, "importance": "1e400"}, REFUSED, "importance"),
        ("text as number", {"text": 5, "infer": False}, REFUSED, "text"),
        ("metadata as string", {**text, "metadata": "{}"}, REFUSED, "metadata"),
        ("infer as string", {**text, "infer": "yes"}, None, "infer"),
        ("occurred_at year 1 at +14:00 (before year 1 in UTC)", {**text, "occurred_at": "0001-01-01T00:00:00+14:00"},
         REFUSED, "occurred_at"),
        ("occurred_at 9999-12-31 at -14:00 (year 10000 in UTC)", {**text, "occurred_at": "9999-12-31T23:59:59-14:00"},
         REFUSED, "occurred_at"),
        ("occurred_at year 1", {**text, "occurred_at": "0001-01-01T00:00:00Z"}, ACCEPTED, None),
        ("occurred_at 9999-12-31", {**text, "occurred_at": "9999-12-31T23:59:59.999999Z"}, ACCEPTED, None),
        ("occurred_at as a huge number", {**text, "occurred_at": 10 ** 20}, REFUSED, "occurred_at"),
        ("occurred_at in the year 0", {**text, "occurred_at": "0000-01-01T00:00:00Z"}, REFUSED, "occurred_at"),
    ]:
        add(f"add {name}", "POST", "/v1/memories", body, expect=expect, names=names)
    for name, body, expect, names in [
        ("text null and metadata", {"text": None, "metadata": {"a": 1}}, ACCEPTED, None),
        ("everything null", {"text": None, "metadata": None, "categories": None, "importance": None}, REFUSED, "text"),
        ("importance as string NaN", {"importance": "NaN"}, REFUSED, "importance"),
        ("metadata as a list", {"metadata": [1]}, REFUSED, "metadata"),
    ]:
        add(f"patch {name}", "PATCH", patch, body, expect=expect, names=names, needs=("memory",))
    for name, body, expect, names in [
        ("expires_at 9999-12-31 at -14:00", {"scopes": ["read"], "expires_at": "9999-12-31T23:59:59-14:00"}, REFUSED,
         "expires_at"),
        ("expires_at 1e400", '{"scopes": ["read"], "expires_at": 1e400}', REFUSED, "expires_at"),
        ("scopes null", {"scopes": None}, REFUSED, "scopes"),
        ("name null", {"scopes": ["read"], "name": None}, ACCEPTED, None),
    ]:
        add(f"key {name}", "POST", "/v1/keys", body, expect=expect, names=names)
    add("share grantee_user_id null", "POST", "/v1/memories/{memory}/shares", {"grantee_user_id": None},
        expect=REFUSED, names="grantee_user_id", needs=("memory",))
    add("share with a registered user (control)", "POST", "/v1/memories/{memory}/shares",
        {"grantee_user_id": f"hv{RUN}-grantee"}, expect=ACCEPTED, needs=("memory",))
    add("restore with a consistency token of NaN", "POST", "/v1/memories/{memory}/restore",
        headers={"X-Consistency-Token": "NaN"}, expect=REFUSED, names="consistency", needs=("memory",))
    add("restore an active memory (control)", "POST", "/v1/memories/{memory}/restore", expect=REFUSED,
        needs=("memory",))
    add("body of NaN alone", "POST", "/v1/memories", "NaN", expect=REFUSED, names="body")
    add("body of a bare 1e400", "POST", "/v1/memories/batch", "1e400", expect=REFUSED, names="body")
    add("body with a UTF-8 byte order mark (control)", "POST", "/v1/memories",
        "\ufeff" + json.dumps({"text": "bom body", "infer": False}), expect=ACCEPTED)
    add("body with a duplicate key", "POST", "/v1/memories", '{"text": "first", "text": "second", "infer": false}',
        expect=ACCEPTED, read=(("memory",), "second"))

    for i, case in enumerate(cases):
        case.user = f"hv{RUN}-{i}"
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


# --- running them --------------------------------------------------------------------------------

@dataclass
class Outcome:
    status: int = 0
    problems: list[str] = field(default_factory=list)
    token: str | None = None
    memory_id: str | None = None


class Log:
    """End offsets of the events topic, with one consumer for the whole run."""

    def __init__(self, bootstrap: str):
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
        self.partitions: list[TopicPartition] = []

    async def __aenter__(self):
        await self.consumer.start()
        self.partitions = [TopicPartition(EVENTS_TOPIC, p) for p in range(EVENTS_PARTITIONS)]
        return self

    async def __aexit__(self, *_):
        await self.consumer.stop()

    async def ends(self) -> dict[int, int]:
        return {tp.partition: end for tp, end in (await self.consumer.end_offsets(self.partitions)).items()}

    async def keys_between(self, before: dict[int, int], after: dict[int, int]) -> set[bytes]:
        """The keys (users) of the records appended between two ends (workers append too)."""
        keys: set[bytes] = set()
        for tp in self.partitions:
            if after[tp.partition] <= before.get(tp.partition, 0):
                continue
            self.consumer.assign([tp])
            self.consumer.seek(tp, before.get(tp.partition, 0))
            for _ in range(50):  # bounded: transaction markers are positions without records
                if await self.consumer.position(tp) >= after[tp.partition]:
                    break
                for record in (await self.consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    if record.offset < after[tp.partition]:
                        keys.add(record.key or b"")
        return keys


async def _committed(bootstrap: str, group: str, partitions) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(EVENTS_TOPIC, p)) or 0 for p in partitions}
    finally:
        await consumer.stop()


async def _wait_for(bootstrap: str, groups, before: dict[int, int], after: dict[int, int], timeout: float) -> list[str]:
    """Wait until every group committed past `after` on each partition the run appended to."""
    moved = [p for p in after if after[p] > before.get(p, 0)]
    behind, deadline = set(groups), time.monotonic() + timeout
    while behind and time.monotonic() < deadline:
        for group in sorted(behind):
            committed = await _committed(bootstrap, group, moved)
            if all(committed[p] >= after[p] for p in moved):
                behind.discard(group)
        if behind:
            await asyncio.sleep(1)
    return [f"{group} did not apply the run's writes within {timeout:.0f} s" for group in sorted(behind)]


def _at(doc: Any, path: tuple) -> Any:
    for part in path:
        doc = doc[part]
    return doc


async def _run(services, cases: list[Case]) -> tuple[dict[str, Outcome], list[str]]:
    outcomes = {c.name: Outcome() for c in cases}
    general: list[str] = []
    async with httpx.AsyncClient(base_url=services.gateway_url, headers=admin_headers(), timeout=120) as api, \
            Log(services.kafka_bootstrap) as log:
        # What some cases need first: their own memory or key, and a registered grantee.
        grantee = await api.post("/v1/users", json={"user_id": f"hv{RUN}-grantee"})
        assert grantee.status_code == 202, grantee.text
        registered = await api.get("/v1/memories", params={  # once Postgres knows the grantee
            "user_id": f"hv{RUN}-grantee", "consistency_token": grantee.json()["consistency_token"]})
        assert registered.status_code == 200, registered.text
        needy = [c for c in cases if "memory" in c.needs]
        made = await api.post("/v1/memories/batch", json={"memories": [
            {"user_id": c.user, "text": f"the memory of case {c.user}", "infer": False} for c in needy]})
        assert made.status_code == 202, made.text
        memories_token = made.json()["consistency_token"]  # the cases' requests wait for it
        memory_of = {c.name: r["id"] for c, r in zip(needy, made.json()["results"])}
        for case in (c for c in cases if "key" in c.needs):
            issued = await api.post("/v1/keys", json={"user_id": case.user, "scopes": ["read"]})
            assert issued.status_code == 201 and issued.json()["usable"], issued.text  # answered once projected
            memory_of[case.name] = issued.json()["key_id"]
        start = await log.ends()

        for case in cases:
            outcome = outcomes[case.name]
            path = case.path.replace("{memory}", memory_of.get(case.name, "")).replace("{key}", memory_of.get(
                case.name, ""))
            body = case.text()
            headers = {"content-type": "application/json", **case.headers}
            if "memory" in case.needs and case.method != "DELETE" and "X-Consistency-Token" not in headers:
                headers["X-Consistency-Token"] = memories_token
            before = await log.ends()
            answer = await api.request(case.method, path, params=case.query(), headers=headers,
                                       content=body.encode("utf-8", "surrogatepass") if body is not None else None)
            outcome.status = answer.status_code
            try:
                payload = answer.json()
            except ValueError:
                outcome.problems.append(f"{answer.status_code} is not JSON: {answer.text[:200]!r}")
                continue
            if answer.status_code >= 500:
                outcome.problems.append(f"{answer.status_code} (a server error from input): {answer.text[:300]}")
            elif answer.status_code >= 400:
                error = payload.get("error") if isinstance(payload, dict) else None
                if not (isinstance(error, dict) and {"code", "message", "details"} <= error.keys()):
                    outcome.problems.append(f"{answer.status_code} without the error shape: {answer.text[:200]}")
                elif case.names and case.names.lower() not in json.dumps(error, ensure_ascii=False).lower():
                    outcome.problems.append(f"the refusal does not name {case.names!r}: {answer.text[:300]}")
                if case.expect == ACCEPTED:
                    outcome.problems.append(f"refused ({answer.status_code}), expected accepted: {answer.text[:300]}")
                if case.user.encode() in await log.keys_between(before, await log.ends()):
                    outcome.problems.append("refused, yet the log got an event of its user")
            else:
                if case.expect == REFUSED:
                    outcome.problems.append(f"accepted ({answer.status_code}), expected refused (naming "
                                            f"{case.names}): {answer.text[:300]}")
                outcome.token = payload.get("consistency_token")
                results = payload.get("results") or []
                if outcome.token is None:
                    outcome.problems.append(f"accepted without a consistency token: {answer.text[:200]}")
                if case.read and len(results) > case.item:
                    outcome.memory_id = results[case.item]["id"]
        requests_end = await log.ends()

        # The conversations' extraction appends more; then every projector must apply it all.
        if any(o.token for c, o in zip(cases, outcomes.values()) if "infer\": true" in (c.text() or "")):
            general += await _wait_for(services.kafka_bootstrap, [EXTRACT_GROUP], start, requests_end, 120)
        end = await log.ends()
        general += await _wait_for(services.kafka_bootstrap, [group_of(p) for p in PROJECTIONS], start, end, 240)
        user_case = {c.user: c.name for c in cases}
        for letter in await dead_letters.read_all(services.kafka_bootstrap):
            p, o = letter["partition"], letter["offset"]
            if letter["topic"] == EVENTS_TOPIC and start.get(p, 0) <= o < end.get(p, 0):
                what = f"dead-lettered by {letter['projection']} at {p}:{o}: {str(letter['error'])[:300]}"
                if letter["key"] in user_case:
                    outcomes[user_case[letter["key"]]].problems.append(what)
                else:
                    general.append(f"(user {letter['key']}) {what}")

        # Each accepted memory reads back, with what was sent, once Postgres applied its token.
        for case in cases:
            outcome = outcomes[case.name]
            if not (outcome.token and outcome.memory_id and case.read):
                continue
            read = await api.get(f"/v1/memories/{outcome.memory_id}",
                                 params={"user_id": case.user, "consistency_token": outcome.token})
            if read.status_code != 200:
                outcome.problems.append(f"accepted, but reading it back answered {read.status_code}: {read.text[:200]}")
                continue
            where, sent = case.read
            try:
                stored = _at(read.json(), where)
            except (KeyError, IndexError, TypeError):
                outcome.problems.append(f"accepted, but {'.'.join(map(str, where))} is not in {read.text[:300]}")
                continue
            if sent is not None and not _same(sent, stored):
                outcome.problems.append(f"accepted, but {'.'.join(map(str, where))} reads back as {stored!r:.200}, "
                                        f"not {sent!r:.200}")
    return outcomes, general


@pytest.fixture(scope="module")
def hostile_run(services):
    with httpx.Client(base_url=services.gateway_url, headers=admin_headers(), timeout=30) as api:
        embedder = api.get("/v1/embedder").json()
    cases = _cases(embedder["embedding_model"], embedder["dim"])
    began = time.monotonic()
    outcomes, general = asyncio.run(_run(services, cases))
    print(f"{len(cases)} hostile cases in {time.monotonic() - began:.0f} s: "
          f"{sum(200 <= o.status < 300 for o in outcomes.values())} accepted, "
          f"{sum(400 <= o.status < 500 for o in outcomes.values())} refused")
    return outcomes, general


CASE_NAMES = [c.name for c in _cases("model", 4)]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_a_hostile_value_is_refused_or_applied_by_every_read_model(hostile_run, name):
    outcomes, _ = hostile_run
    assert not outcomes[name].problems, f"{name} (answered {outcomes[name].status}): " + "; ".join(
        outcomes[name].problems)


def test_the_run_lost_nothing_and_every_projector_kept_up(hostile_run):
    _, general = hostile_run
    assert not general, "; ".join(general)


def test_the_table_covers_every_shape_and_value():
    shapes = {(c.method, c.path) for c in _cases("model", 4)}
    assert {("POST", "/v1/memories"), ("POST", "/v1/memories/batch"), ("PATCH", "/v1/memories/{memory}"),
            ("POST", "/v1/memories/{memory}/shares"), ("POST", "/v1/memories/{memory}/restore"),
            ("POST", "/v1/keys"), ("DELETE", "/v1/keys/{key}"), ("POST", "/v1/users")} <= shapes
    names = " ".join(CASE_NAMES)
    for value in [*NUMBERS, *STRINGS, *DEEP, "at the limit", "over the limit", "null", "empty key", "dotted key"]:
        assert value in names, value
    assert len(CASE_NAMES) >= 300
