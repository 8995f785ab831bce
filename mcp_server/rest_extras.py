"""The two REST reads the MCP server needs that the Python SDK has no method for: the
user's graph (GET /v1/graph) and who a key is (GET /v1/me).

They go through the SDK client's own request path (its `_Call`), so they get what every
SDK call gets: the retry budget, errors as RecallstackError, and for the graph the user's
read-your-writes token (the graph waits until it has applied the caller's latest write).
Should the SDK grow `graph()` and `me()`, these become calls to them.
"""

from __future__ import annotations

from typing import Any

from recallstack import AsyncClient
from recallstack.client import _Call
from recallstack.ids import id_arg

GRAPH_LIMIT = 5_000  # the API's maximum: a name is looked for among all the user's entities


async def user_graph(client: AsyncClient, user_id: str, *, include_closed: bool = False) -> dict[str, Any]:
    """{entities, relations, co_mentions} of the user (see docs/api.md, GET /v1/graph)."""
    user_id = id_arg(user_id, "user_id")
    call = _Call("GET", "/v1/graph", dict, params={"user_id": user_id, "limit": GRAPH_LIMIT,
                                                  "include_closed": "true" if include_closed else None},
                 user_id=user_id, token_in="query")
    return await client._send(call)


async def key_user(client: AsyncClient) -> str:
    """The user the client's API key belongs to."""
    return (await client._send(_Call("GET", "/v1/me", dict)))["user_id"]
