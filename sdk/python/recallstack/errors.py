"""Exceptions of the recallstack SDK.

Every failure is a `RecallstackError` carrying what the server said: the HTTP `status`
(None when no answer came), the error `code` and `message` of the API's
`{"error": {code, message, details}}` body, its `details`, the `Retry-After` it asked for
and how many `attempts` the client made. Subclasses let callers catch a kind:

| class | when |
| --- | --- |
| `InvalidRequest` (also a `ValueError`) | 400, 413, 422, or arguments the client refuses before sending |
| `AuthenticationError` | 401, 403 |
| `NotFound` (also a `LookupError`) | 404: absent, deleted, or another user's memory |
| `Conflict` | 409 that retries did not resolve |
| `Unavailable` | 502/503/504, or the server could not be reached, after the retry budget |
| `RateLimited` (an `Unavailable`) | 429 after the retry budget |
"""

from __future__ import annotations

from typing import Any


class RecallstackError(Exception):
    """A call to recallstack failed; `status`, `code`, `message`, `details` say how."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 details: dict[str, Any] | None = None, retry_after: float | None = None, attempts: int = 1,
                 method: str | None = None, url: str | None = None, request_id: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details or {}
        self.retry_after = retry_after
        self.attempts = attempts
        self.method = method
        self.url = url
        self.request_id = request_id  # the X-Request-ID of the call: the server's log lines carry it

    def __str__(self) -> str:
        head = " ".join(str(p) for p in (self.status, self.code) if p is not None)
        where = f" ({self.method} {self.url}" + (f", {self.attempts} attempts" if self.attempts > 1 else "") \
            + (f", request {self.request_id}" if self.request_id else "") + ")" if self.method else ""
        return f"{head}: {self.message}{where}" if head else f"{self.message}{where}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, message={self.message!r})"


class InvalidRequest(RecallstackError, ValueError):
    """The request was refused as malformed (400/413/422); `details` names the field."""


class AuthenticationError(RecallstackError):
    """The API key is missing, unknown or not allowed (401/403)."""


class NotFound(RecallstackError, LookupError):
    """No such memory for this user (404): absent, deleted, or someone else's."""


class Conflict(RecallstackError):
    """409: e.g. the same Idempotency-Key still in progress after every retry."""


class Unavailable(RecallstackError):
    """The service (or a dependency: Kafka, Postgres, ...) could not answer within the retry budget."""


class RateLimited(Unavailable):
    """429 after the retry budget."""


def error_for(status: int | None, body: Any, *, text: str = "", retry_after: float | None = None,
              attempts: int = 1, method: str | None = None, url: str | None = None,
              request_id: str | None = None) -> RecallstackError:
    """The exception for an error answer: the API's `{"error": {...}}` body when there is one."""
    code, message, details = None, None, {}
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, message, details = error.get("code"), error.get("message"), error.get("details") or {}
    elif isinstance(body, dict) and "detail" in body:  # a plain FastAPI error
        message = str(body["detail"])
    if not message:
        message = (text or "").strip()[:500] or f"HTTP {status}"
    if status in (400, 413, 422):
        kind: type[RecallstackError] = InvalidRequest
    elif status in (401, 403):
        kind = AuthenticationError
    elif status == 404:
        kind = NotFound
    elif status == 409:
        kind = Conflict
    elif status == 429:
        kind = RateLimited
    elif status is None or status in (502, 503, 504):
        kind = Unavailable
    else:
        kind = RecallstackError
    return kind(message, status=status, code=code, details=details if isinstance(details, dict) else
                {"details": details}, retry_after=retry_after, attempts=attempts, method=method, url=url,
                request_id=request_id)
