// The retry policy and backoff (pure; no server): the same rules as the Python SDK's retry.py.
import assert from "node:assert/strict";
import { test } from "node:test";

import { RetryPolicy, retryAfterSeconds, retryable } from "../../dist/index.js";

const answer = (status, retryAfter = null, errorCode = null) => ({ kind: "response", status, retryAfter, errorCode });
const fixed = (value) => () => value;

test("backoff is full jitter under a doubling cap", () => {
  const policy = new RetryPolicy({ baseDelayMs: 100, maxDelayMs: 1000 });
  assert.equal(policy.backoffMs(0, fixed(0.999999)) < 100, true);
  assert.equal(policy.backoffMs(0, fixed(0.5)), 50);
  assert.equal(policy.backoffMs(3, fixed(0.5)), 400);
  assert.equal(policy.backoffMs(10, fixed(0.5)), 500); // capped at maxDelayMs
  assert.equal(policy.backoffMs(5000, fixed(1)), 1000); // no overflow for a huge retry number
  assert.equal(policy.backoffMs(2, fixed(0)), 0);
});

test("what is retried: 429, 502-504, a 409 idempotency_in_progress and transport failures", () => {
  const policy = new RetryPolicy();
  for (const status of [429, 502, 503, 504]) assert.equal(retryable(answer(status), policy), true, String(status));
  for (const status of [200, 202, 400, 401, 403, 404, 413, 422, 500]) assert.equal(retryable(answer(status), policy), false, String(status));
  assert.equal(retryable(answer(409, null, "idempotency_in_progress"), policy), true);
  assert.equal(retryable(answer(409, null, "conflict"), policy), false);
  assert.equal(retryable({ kind: "transport", error: new TypeError("fetch failed") }, policy), true);
});

test("Retry-After in seconds or as an HTTP date", () => {
  assert.equal(retryAfterSeconds("3"), 3);
  assert.equal(retryAfterSeconds(" 1.5 "), 1.5);
  assert.equal(retryAfterSeconds("-4"), 0);
  assert.equal(retryAfterSeconds(null), null);
  assert.equal(retryAfterSeconds(""), null);
  assert.equal(retryAfterSeconds("soon"), null);
  const now = Date.parse("Sun, 06 Dec 2026 18:00:00 GMT");
  assert.equal(retryAfterSeconds("Sun, 06 Dec 2026 18:00:07 GMT", now), 7);
  assert.equal(retryAfterSeconds("Sun, 06 Dec 2026 17:59:00 GMT", now), 0);
});

test("the waits: jitter alone, or Retry-After plus jitter", () => {
  let clock = 0;
  const state = new RetryPolicy({ baseDelayMs: 100, maxDelayMs: 1000 }).start(() => clock, fixed(0.5));
  assert.equal(state.nextDelayMs(answer(503)), 50);
  assert.equal(state.nextDelayMs(answer(503, "2")), 2000 + 100); // never earlier than asked
  assert.equal(state.lastRetryAfter, 2);
  assert.equal(state.nextDelayMs(answer(200)), null);
  assert.equal(state.attempts, 3);
  assert.equal(state.gaveUp, null);
});

test("at most maxAttempts tries", () => {
  const state = new RetryPolicy({ maxAttempts: 3, baseDelayMs: 1 }).start(() => 0, fixed(0));
  assert.equal(state.nextDelayMs(answer(502)), 0);
  assert.equal(state.nextDelayMs(answer(502)), 0);
  assert.equal(state.nextDelayMs(answer(502)), null);
  assert.match(state.gaveUp, /gave up after 3 attempts/);
  assert.equal(RetryPolicy.none().start().nextDelayMs(answer(503)), null);
});

test("no try starts after the total timeout, and a Retry-After beyond the budget ends the retries", () => {
  let clock = 0;
  const policy = new RetryPolicy({ totalTimeoutMs: 10_000, baseDelayMs: 1000, maxDelayMs: 1000 });
  const state = policy.start(() => clock, fixed(1));
  clock = 9_500;
  assert.equal(state.nextDelayMs(answer(503)), 500); // capped at what remains
  clock = 10_001;
  assert.equal(state.nextDelayMs(answer(503)), null);
  assert.match(state.gaveUp, /gave up after 10s/);

  const asked = policy.start(() => 0, fixed(0));
  assert.equal(asked.nextDelayMs(answer(429, "60")), null);
  assert.match(asked.gaveUp, /asked to retry after 60s, beyond the remaining 10.0s/);
});

test("a policy refuses nonsense", () => {
  assert.throws(() => new RetryPolicy({ maxAttempts: 0 }), RangeError);
  assert.throws(() => new RetryPolicy({ baseDelayMs: -1 }), RangeError);
});
