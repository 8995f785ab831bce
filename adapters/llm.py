"""JSON answers from any OpenAI-compatible chat endpoint (OpenAI, Ollama, vLLM, llama.cpp, LM Studio...).

`LlmClient.complete_json(system, user, schema)` sends one chat completion asking for a JSON
object and returns it validated by a pydantic model. Local models are sloppy, so:

- JSON mode is asked twice: `response_format={"type": "json_object"}` (many local servers
  ignore it, LM Studio rejects it) and a "JSON only" line in the system prompt. A 400 that
  names an optional parameter we sent (response_format, temperature) drops it for good and
  sends again, so one client works with servers that support neither.
- The object is taken out of ```json fences, <think> blocks and prose around it.
- Malformed JSON, schema violations, timeouts, connection errors, HTTP 429 and 5xx are
  retried up to `max_retries` times with a short exponential backoff; a bad answer is
  shown back to the model with what was wrong. Other 4xx (bad key, unknown model) are not
  retried. What is left raises LlmError naming the problem.
- Every failed request counts on the circuit breaker; while it is open, LlmUnavailable is
  raised at once without a request, so workers back off instead of queueing timeouts.

The openai client's own retries are off (max_retries=0): ours also cover bad answers and
feed the breaker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any, TypeVar

import openai
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ValidationError

from adapters.resilience import BREAKER_STATE, watch  # noqa: F401  (the gauge lives with the breakers)
from domain.circuit_breaker import CircuitBreaker

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

REQUESTS = Counter("recallstack_llm_requests_total",
                   "Chat completion requests by outcome: ok, timeout, unreachable, http_error, malformed_json, "
                   "schema_violation, circuit_open (refused without a request)", ["outcome"])
SECONDS = Histogram("recallstack_llm_request_seconds", "Time of each chat completion request (any outcome)",
                    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120))

JSON_ONLY = "Answer with JSON only: a single JSON object, no prose before or after it, no code fences."
MAX_BACKOFF_S = 10.0


class LlmError(Exception):
    """The endpoint gave no usable answer. `kind` is the outcome of the last attempt."""

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind


class LlmUnavailable(LlmError):
    """The circuit breaker is open: no request was sent; try again after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message, "circuit_open")
        self.retry_after_s = retry_after_s


class _Failure(Exception):
    def __init__(self, kind: str, problem: str, retryable: bool = True, answer: str | None = None,
                 wait_s: float | None = None):
        super().__init__(problem)
        self.kind, self.problem, self.retryable, self.answer, self.wait_s = kind, problem, retryable, answer, wait_s


_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)```", re.S)


def extract_json_object(text: str | None) -> dict:
    """The JSON object in a model's answer (fenced, after a <think> block or prose); ValueError if none."""
    text = _THINK.sub("", text or "").strip()
    if not text:
        raise ValueError("the answer is empty")
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    if text.startswith("["):
        raise ValueError("expected a JSON object, got a JSON array")
    start = text.find("{")
    if start < 0:
        raise ValueError("the answer contains no JSON object")
    try:
        value, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the answer is not valid JSON ({exc.msg} at char {exc.pos})") from None
    return value


def _schema_problem(schema: type[BaseModel], exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        got = repr(err.get("input"))
        parts.append(f"{where}: {err['msg']} (got {got[:60] + '...' if len(got) > 60 else got})")
    more = f" and {exc.error_count() - 3} more" if exc.error_count() > 3 else ""
    return f"the answer does not match {schema.__name__}: " + "; ".join(parts) + more


class LlmClient:
    def __init__(self, base_url: str, model: str, api_key: str = "not-needed", timeout_s: float = 30.0,
                 max_retries: int = 2, breaker: CircuitBreaker | None = None, *,
                 backoff_s: float = 0.25, temperature: float | None = 0.0):
        if not base_url or not model:
            raise ValueError("the LLM client needs a base_url and a model")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = base_url
        self.model = model
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.breaker = breaker or CircuitBreaker(f"llm:{model}")
        watch(self.breaker)
        # Local servers ignore the key, but the openai client refuses to start without one.
        self._client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "not-needed",
                                          timeout=timeout_s, max_retries=0)
        self._optional: dict[str, Any] = {"response_format": {"type": "json_object"}}
        if temperature is not None:
            self._optional["temperature"] = temperature  # deterministic-ish extraction

    def describe(self) -> str:
        return f"{self.model} at {self.base_url}"

    async def complete_json(self, system: str, user: str, schema: type[M]) -> M:
        messages = [{"role": "system", "content": f"{system.rstrip()}\n\n{JSON_ONLY}"},
                    {"role": "user", "content": user}]
        followup: list[dict] = []  # the last rejected answer and why, so the retry can fix it
        attempt, last_problem = 0, ""
        while True:
            if not self.breaker.allow():
                REQUESTS.labels("circuit_open").inc()
                retry_after = self.breaker.retry_after_s()
                raise LlmUnavailable(f"LLM {self.describe()} is unavailable: it failed "
                                     f"{self.breaker.failure_threshold} times in a row{last_problem}; "
                                     f"retry in {retry_after:.1f} s", retry_after)
            try:
                result = await self._attempt(messages + followup, schema)
            except _Failure as failure:
                if failure.kind == "rejected_parameter":  # the server is fine, our request was not
                    self.breaker.record_success()
                    continue
                REQUESTS.labels(failure.kind).inc()
                self._record_failure()
                attempt, last_problem = attempt + 1, f" (last: {failure.problem})"
                if not failure.retryable or attempt > self.max_retries:
                    tries = f" after {attempt} attempts" if attempt > 1 else ""
                    log.warning("LLM %s failed%s: %s", self.describe(), tries, failure.problem)
                    raise LlmError(f"LLM {self.describe()}: {failure.problem}{tries}", failure.kind) from None
                if failure.answer is not None:
                    followup = [{"role": "assistant", "content": failure.answer[:4000]},
                                {"role": "user", "content": f"That answer was rejected: {failure.problem}. "
                                                            f"Answer again. {JSON_ONLY}"}]
                await asyncio.sleep(min(failure.wait_s or self.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S))
                continue
            REQUESTS.labels("ok").inc()
            self.breaker.record_success()
            return result

    async def _attempt(self, messages: list[dict], schema: type[M]) -> M:
        start = time.perf_counter()
        try:
            response = await self._client.chat.completions.create(model=self.model, messages=messages,
                                                                  **self._optional)
        except openai.APITimeoutError:
            raise _Failure("timeout", f"no answer within {self.timeout_s:g} s (RECALLSTACK_LLM_TIMEOUT_MS)") from None
        except openai.APIConnectionError as exc:
            raise _Failure("unreachable", f"cannot reach the endpoint: {exc}") from None
        except openai.APIStatusError as exc:
            message = str(exc)
            rejected = [p for p in self._optional if exc.status_code == 400 and p in message]
            if rejected:
                log.info("LLM %s rejects %s; sending without it from now on", self.describe(), rejected)
                for p in rejected:
                    del self._optional[p]
                raise _Failure("rejected_parameter", message) from None
            transient = exc.status_code == 429 or exc.status_code >= 500
            raise _Failure("http_error", f"HTTP {exc.status_code}: {message[:300]}", retryable=transient,
                           wait_s=_retry_after(exc)) from None
        finally:
            SECONDS.observe(time.perf_counter() - start)
        try:
            choice = response.choices[0]
            content = choice.message.content
        except (AttributeError, IndexError, TypeError):
            raise _Failure("malformed_json", "the response has no message (not an OpenAI chat completion)") from None
        try:
            value = extract_json_object(content)
        except ValueError as exc:
            cut = " (cut off at the token limit)" if choice.finish_reason == "length" else ""
            head = (content or "")[:80]
            raise _Failure("malformed_json", f"{exc}{cut}; the answer began {head!r}", answer=content or "") from None
        try:
            return schema.model_validate(value)
        except ValidationError as exc:
            raise _Failure("schema_violation", _schema_problem(schema, exc), answer=content) from None

    def _record_failure(self) -> None:
        was = self.breaker.state
        self.breaker.record_failure()
        if self.breaker.state == "open" and was != "open":
            log.warning("LLM %s: circuit open for %.0f s after repeated failures",
                        self.describe(), self.breaker.reset_after_s)

    async def close(self) -> None:
        await self._client.close()

    def __repr__(self) -> str:
        return f"LlmClient(model={self.model!r}, base_url={self.base_url!r})"


def _retry_after(exc: openai.APIStatusError) -> float | None:
    try:
        return float(exc.response.headers.get("retry-after", ""))
    except (AttributeError, ValueError):
        return None
