"""The sparse index's Tantivy schema, analyzers and documents (read and write sides share it).

One document per memory (a deleted memory leaves a tombstone: its id, user and state only,
no content, so a create of an id that existed never brings it back, as in Postgres), and
one per (topic, partition) holding the log position the version has applied, replaced in
the same commit as the data it covers.

    kind         raw       "memory" | "position"
    memory_id    raw       stored; id_hi / id_lo: the UUID's two halves as fast u64 columns
                           (a hit's id without opening the document store)
    user_id, agent_id, run_id, app_id, state   raw, stored (state: active/archived/forgotten/deleted)
    text         stored; English stemming (simple tokenizer, lower case, Snowball English): BM25.
                 No length normalisation: a second value pads each text with PAD to FLAT_LENGTH
                 tokens (docs/search.md: b = 0 finds more on short conversational memories, and
                 the binding cannot turn fieldnorms off); PAD is a letter no query word can be.
    words        not stored; unstemmed lower-case words (simple tokenizer): fuzzy matching of names
    idents       not stored; identifiers whole, their path pieces and camel humps (domain/index_terms)
    entities     stored; lower-cased words of the memory's entity names (domain/index_terms.entity_words)
    context      stored; the turns written just before it (domain/turn_context), analysed and padded
                 as `text`; BM25 over it counts CONTEXT_WEIGHT of the text's (adapters/sparse_index.py)
    occurred_us  i64 microseconds since the epoch (when the remembered thing happened), indexed
                 and fast for range queries. Not a date field: the binding indexes dates at
                 whole seconds, and a window's [start, end) must be exact.
    topic, slot, partition, offset   the position documents' fields (slot: `topic/partition`)

Everything a version is rebuilt from is stored (`memory_from_stored` is the inverse of
`memory_document`): `words`, `idents` and the id halves are derived from stored fields.
"""

from __future__ import annotations

import json
import re
import tempfile
import uuid
from functools import cache
from pathlib import Path

import tantivy

from adapters.sparse_doc import MemoryDoc, micros  # noqa: F401 (the documents' values, re-exported)
from domain import index_terms

KIND_MEMORY, KIND_POSITION = "memory", "position"
STATES = ("active", "archived", "forgotten", "deleted")
SCOPE_FIELDS = ("agent_id", "run_id", "app_id")
TEXT_ANALYZER, WORDS_ANALYZER, TERMS_ANALYZER = "rs_en", "rs_words", "rs_terms"
PAD, FLAT_LENGTH = "\u01c2", 256  # keywords() are [a-z0-9]+: never PAD
_TOKEN = re.compile(r"[^\W_]+")  # what the simple tokenizer keeps: runs of letters and digits


@cache
def schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("kind", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("memory_id", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_unsigned_field("id_hi", fast=True)
    builder.add_unsigned_field("id_lo", fast=True)
    for name in ("user_id", *SCOPE_FIELDS, "state"):
        builder.add_text_field(name, stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("text", stored=True, tokenizer_name=TEXT_ANALYZER, index_option="freq")
    builder.add_text_field("words", stored=False, tokenizer_name=WORDS_ANALYZER, index_option="basic")
    builder.add_text_field("idents", stored=False, tokenizer_name=TERMS_ANALYZER, index_option="basic")
    builder.add_text_field("entities", stored=True, tokenizer_name=TERMS_ANALYZER, index_option="basic")
    builder.add_text_field("context", stored=True, tokenizer_name=TEXT_ANALYZER, index_option="freq")
    builder.add_integer_field("occurred_us", stored=True, indexed=True, fast=True)
    builder.add_text_field("topic", stored=True, tokenizer_name="raw", index_option="basic")
    builder.add_text_field("slot", tokenizer_name="raw", index_option="basic")  # topic/partition: replaced by term
    builder.add_unsigned_field("partition", stored=True)
    builder.add_integer_field("offset", stored=True)
    return builder.build()


@cache
def text_analyzer() -> tantivy.TextAnalyzer:
    """BM25's terms: the same analyzer indexes the text and turns query words into terms."""
    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).filter(tantivy.Filter.remove_long(40))
            .filter(tantivy.Filter.lowercase()).filter(tantivy.Filter.stemmer("english")).build())


@cache
def words_analyzer() -> tantivy.TextAnalyzer:
    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).filter(tantivy.Filter.remove_long(100))
            .filter(tantivy.Filter.lowercase()).build())


@cache
def terms_analyzer() -> tantivy.TextAnalyzer:
    # Terms made in Python (domain/index_terms), joined by spaces: only split there.
    return tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build()


def text_terms(word: str) -> list[str]:
    return text_analyzer().analyze(word)


class SchemaMismatch(ValueError):
    """The version was built with another schema (an older release): only a replay into a
    new version brings it to this one."""


@cache
def _schema_json() -> list:
    """This schema as Tantivy writes it into meta.json (each field with its options)."""
    with tempfile.TemporaryDirectory() as tmp:
        tantivy.Index(schema(), path=tmp)
        return json.loads((Path(tmp) / "meta.json").read_text())["schema"]


def open_index(path: Path, create: bool = False, check: bool = True) -> tantivy.Index:
    """The index in `path` with this schema's analyzers registered (they are not persisted)
    and a reader reloaded only when asked (`Index.reload`). `create`: make an empty one
    when there is none. `check`: refuse (SchemaMismatch) a version built with another schema,
    whose fields this code would misread."""
    if create and not exists(path):
        path.mkdir(parents=True, exist_ok=True)
        index = tantivy.Index(schema(), path=str(path), reuse=True)
    else:
        index = tantivy.Index.open(str(path))
    if check and json.loads((path / "meta.json").read_text())["schema"] != _schema_json():
        raise SchemaMismatch(f"the sparse index in {path} was built with another schema: "
                             "`recallstack replay --projection sparse` rebuilds it")
    index.register_tokenizer(TEXT_ANALYZER, text_analyzer())
    index.register_tokenizer(WORDS_ANALYZER, words_analyzer())
    index.register_tokenizer(TERMS_ANALYZER, terms_analyzer())
    index.config_reader("Manual", 0)
    return index


def exists(path: Path) -> bool:
    return (path / "meta.json").exists()


def _id_halves(memory_id: str) -> tuple[int, int]:
    """The UUID's two halves (0, 0 when it is not a UUID: the reader then opens the stored id)."""
    try:
        value = uuid.UUID(memory_id).int
    except (ValueError, AttributeError, TypeError):
        return 0, 0
    return value >> 64, value & 0xFFFF_FFFF_FFFF_FFFF


def id_from_halves(high: int, low: int) -> str | None:
    return str(uuid.UUID(int=(high << 64) | low)) if high or low else None


def memory_document(doc: MemoryDoc) -> tantivy.Document:
    out = tantivy.Document()
    out.add_text("kind", KIND_MEMORY)
    out.add_text("memory_id", doc.memory_id)
    high, low = _id_halves(doc.memory_id)
    out.add_unsigned("id_hi", high)
    out.add_unsigned("id_lo", low)
    out.add_text("user_id", doc.user_id)
    out.add_text("state", doc.state)
    for name in SCOPE_FIELDS:
        if getattr(doc, name) is not None:
            out.add_text(name, getattr(doc, name))
    if doc.text:
        _add_flat(out, "text", doc.text)
        out.add_text("words", doc.text)
        identifiers = index_terms.identifiers(doc.text)
        if identifiers:
            out.add_text("idents", " ".join(identifiers))
    if doc.entities:
        out.add_text("entities", " ".join(doc.entities))
    if doc.context:
        _add_flat(out, "context", doc.context)
    if doc.occurred_us is not None:
        out.add_integer("occurred_us", doc.occurred_us)
    return out


def _add_flat(out: tantivy.Document, name: str, text: str) -> None:
    """`text`, padded to FLAT_LENGTH tokens: BM25 with no length normalisation (see above)."""
    out.add_text(name, text)
    missing = FLAT_LENGTH - len(_TOKEN.findall(text))
    if missing > 0:
        out.add_text(name, (PAD + " ") * missing)


def memory_from_stored(stored: dict) -> MemoryDoc:
    """The MemoryDoc a stored document (`Document.to_dict()`) was made from."""
    def one(name: str):
        values = stored.get(name)
        return values[0] if values else None

    entities = one("entities")
    return MemoryDoc(memory_id=one("memory_id"), user_id=one("user_id"), state=one("state"), text=one("text") or "",
                     agent_id=one("agent_id"), run_id=one("run_id"), app_id=one("app_id"),
                     entities=tuple(entities.split(" ")) if entities else (), occurred_us=one("occurred_us"),
                     context=one("context") or "")


def position_document(topic: str, partition: int, offset: int) -> tantivy.Document:
    out = tantivy.Document()
    out.add_text("kind", KIND_POSITION)
    out.add_text("topic", topic)
    out.add_text("slot", slot(topic, partition))
    out.add_unsigned("partition", partition)
    out.add_integer("offset", offset)
    return out


def slot(topic: str, partition: int) -> str:
    """The term naming one position document (the writer deletes the old one by it)."""
    return f"{topic}/{partition}"


def term(name: str, value: str, of: tantivy.Schema | None = None) -> tantivy.Query:
    return tantivy.Query.term_query(of or schema(), name, value, index_option="basic")


def read_positions(searcher: tantivy.Searcher, topic: str, of: tantivy.Schema | None = None) -> dict[int, int]:
    """{partition: offset} the version has applied of `topic` (its position documents);
    `of`: the index's own schema, when it may be another one than this code's."""
    query = tantivy.Query.boolean_query([(tantivy.Occur.Must, term("kind", KIND_POSITION, of)),
                                         (tantivy.Occur.Must, term("topic", topic, of))])
    hits = searcher.search(query, limit=100_000, count=False).hits
    out: dict[int, int] = {}
    for _score, address in hits:
        stored = searcher.doc(address)
        partition, offset = stored["partition"][0], stored["offset"][0]
        out[partition] = max(offset, out.get(partition, -1))
    return out
