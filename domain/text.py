"""Unicode text that UTF-8 can hold (pure). JSON may escape a lone surrogate (`"\\ud800"`),
which Python decodes into a str that no UTF-8 store (the log, Postgres, Neo4j, Redis) or
UTF-8 answer can hold."""


def is_unicode(text: str) -> bool:
    """Whether `text` has no lone surrogate (it encodes as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escaped(text: str) -> str:
    """`text` with any lone surrogate shown as its escape (`\\ud800`), so an answer that quotes
    input stays UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
