"""recallstack: the Python SDK of the recallstack memory service.

    from recallstack import Client          # mem0 users: `from recallstack import MemoryClient`

    client = Client()                       # $RECALLSTACK_URL or http://127.0.0.1:8080
    client.add("Alice prefers dark mode", user_id="alice")
    hits = client.search("which theme does alice like?", user_id="alice")   # sees the add
    print(hits["results"][0]["memory"], hits.results[0].score)

`Client` (sync) and `AsyncClient` (asyncio) have mem0's method names and arguments: add,
search, get, get_all, update, delete, delete_all, history, plus get_context. Results are
typed dicts (recallstack.types), failures `RecallstackError`s (recallstack.errors); writes
are retried safely (Idempotency-Key) and reads see the client's own writes (consistency
tokens). The guide: docs/clients.md; this distribution is recallstack-sdk (sdk/pyproject.toml).
"""

from recallstack.client import DEFAULT_URL, AsyncClient, Client
from recallstack.errors import (AuthenticationError, Conflict, InvalidRequest, NotFound, RateLimited, RecallstackError,
                                Unavailable)
from recallstack.core_memory import Block
from recallstack.retry import RetryPolicy
from recallstack.types import (Context, HistoryEntry, Memory, MemoryPage, Profile, Record, SearchResult, WriteEvent,
                               WriteResult)

# mem0's names, so switching is a change of import.
MemoryClient = Client
AsyncMemoryClient = AsyncClient

__version__ = "0.1.0"
__all__ = [
    "Client", "AsyncClient", "MemoryClient", "AsyncMemoryClient", "RetryPolicy", "DEFAULT_URL",
    "RecallstackError", "InvalidRequest", "AuthenticationError", "NotFound", "Conflict", "Unavailable", "RateLimited",
    "Block", "Record", "Memory", "WriteEvent", "WriteResult", "SearchResult", "MemoryPage", "HistoryEntry", "Context",
    "Profile",
]
