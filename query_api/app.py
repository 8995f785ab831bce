"""The query API (FastAPI): reads only, from the read models. Never imports command_api.

Read-your-writes: a `consistency_token` makes a read wait (bounded) until the read models
it uses applied it. Postgres is required (past the bound: 503); the graph source is left
out (named in `degraded`) when Neo4j lags past the bound; the answer cache is bypassed
when Redis lags. Reads that return memories append MemoryAccessed events in the
background (listing does not: browsing is not recall).

The use cases are in application/ (search.py, reads.py), the routes in query_api/routes/;
this module wires them into one app.
"""

from __future__ import annotations

from fastapi import FastAPI

from adapters.http_api import install_error_handlers, install_health, install_http_metrics, install_request_guard
from adapters.observability import install_request_context
from query_api import mem0_routes
from query_api.deps import QueryDeps
from query_api.routes import accounts, core_memory, graph, memories, ops, profiles, search, sharing

__all__ = ["BODY_LIMIT", "PROJECTION", "QueryDeps", "create_app"]

PROJECTION = "postgres"
# The largest body a read takes: a search with a long query and a big filter is a few KiB;
# a filter at its limits (64 conditions, lists of 1,000) stays well under this.
BODY_LIMIT = 1024 * 1024


def create_app(deps: QueryDeps, lifespan=None) -> FastAPI:
    app = FastAPI(title="recallstack query API", version="0.2.0", lifespan=lifespan)
    install_error_handlers(app)
    install_health(app, deps.checks)
    install_request_guard(app, {}, BODY_LIMIT)
    install_http_metrics(app, "query")
    install_request_context(app, "query-api")
    # mem0's client (docs/mem0.md) first: on a path both share its Token-scheme route must match first
    for routes in (mem0_routes, search, memories, graph, ops, accounts, sharing, profiles, core_memory):
        app.include_router(routes.router(deps))
    return app
