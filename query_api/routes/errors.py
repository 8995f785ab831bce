"""The HTTP answers of the read use cases' failures, and the request parameters every read
route takes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import Query

from adapters import resilience
from adapters.http_api import ApiError, token_error
from application.freshness import PostgresUnavailable
from application.reads import MemoryNotFound
from application.reranking import SETTING as RERANK_SETTING, RerankNotConfigured
from application.search import SourceFailed
from domain.as_of import InvalidAsOf, LogUnreadable
from domain.consistency import InvalidConsistencyToken, NotYetApplied
from domain.filters import FilterError, Node, parse
from domain.identifiers import ID_PATTERN
from query_api.requests import AS_OF_HELP


@contextmanager
def answered(field: str = "consistency_token") -> Iterator[None]:
    """Run a use case, its failures raised as the ApiError a client gets (`field`: where the
    request carries its consistency token)."""
    try:
        yield
    except (InvalidConsistencyToken, NotYetApplied) as exc:
        raise token_error(exc, field) from exc
    except PostgresUnavailable as exc:
        raise postgres_down(exc) from exc
    except SourceFailed as exc:
        raise ApiError(503, "unavailable", f"no search source could answer ({exc})", retry_after=1) from exc
    except MemoryNotFound as exc:
        raise ApiError(404, "not_found", str(exc), {"field": "memory_id"}) from exc
    except InvalidAsOf as exc:
        raise ApiError(422, "invalid_request", f"{exc.field}: {exc}", {"field": exc.field}) from exc
    except LogUnreadable as exc:
        raise ApiError(503, "unavailable", str(exc), {"dependency": exc.dependency}, retry_after=1) from exc
    except RerankNotConfigured as exc:
        raise ApiError(422, "rerank_not_configured", str(exc), {"field": "rerank", "setting": RERANK_SETTING}) from exc


def postgres_down(exc: PostgresUnavailable) -> ApiError:
    return ApiError(503, "unavailable", str(exc), {"dependency": "postgres"},
                    retry_after=resilience.retry_after(exc.breaker))


def parsed_filters(raw) -> Node | None:
    """The filter tree of a request; 422 naming the filter's path when it cannot be used."""
    try:
        return parse(raw)
    except FilterError as exc:
        raise ApiError(422, "invalid_request", str(exc), {"field": exc.path}) from exc


def user_param() -> Any:
    return Query(default=None, pattern=ID_PATTERN,
                 description="whose memories; default the API key's user (an admin key may name any user)")


def scope_param() -> Any:
    """A fresh Query(...) per parameter: FastAPI would merge parameters sharing one object."""
    return Query(default=None, pattern=ID_PATTERN)


def token_param() -> Any:
    return Query(default=None, max_length=4_096)


def as_of_param() -> Any:
    return Query(default=None, max_length=4_096, description=AS_OF_HELP)
