// The client's request building, retries, tokens and errors with a stand-in fetch (pure unit logic:
// no server; test/e2e/ runs the same client against the real stack).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AuthenticationError, Conflict, InvalidRequest, NotFound, RateLimited, RecallstackClient, RecallstackError,
  RetryPolicy, Unavailable, mergeTokens,
} from "../../dist/index.js";

const MEMORY = "6f1c2a9e-0d7b-4c1e-9a55-3e2b8f0a1c44";
const fast = new RetryPolicy({ baseDelayMs: 1, maxDelayMs: 2 });

/** A fetch that answers from `replies` in turn (a Response, a function of the request, or an Error to throw). */
function scripted(...replies) {
  const seen = [];
  const fetch = async (url, init) => {
    seen.push({ url: new URL(url), method: init.method, headers: init.headers, body: init.body ? JSON.parse(init.body) : undefined });
    const reply = replies.length > 1 ? replies.shift() : replies[0];
    if (reply instanceof Error) throw reply;
    return typeof reply === "function" ? reply(seen.at(-1)) : reply.clone();
  };
  return { fetch, seen };
}
const json = (status, body, headers = {}) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
const written = (token) => json(202, { results: [{ id: MEMORY, event: "ADD", status: "processing" }], consistency_token: token });
const client = (fetch, options = {}) => new RecallstackClient({ baseUrl: "http://recall.test", apiKey: "rsk_test", fetch, retry: fast, ...options });

test("add: the body, the key, a request id and an idempotency key", async () => {
  const { fetch, seen } = scripted(written("memory-events/0:5"));
  const result = await client(fetch).add("Alice prefers dark mode", { user_id: "alice", agent_id: "cursor", metadata: { topic: "ui" },
    occurred_at: new Date(Date.UTC(2024, 5, 3, 9, 30)), enable_graph: true });
  assert.equal(result.results[0].id, MEMORY);
  const [call] = seen;
  assert.equal(call.method, "POST");
  assert.equal(call.url.pathname, "/v1/memories");
  assert.deepEqual(call.body, { user_id: "alice", text: "Alice prefers dark mode", agent_id: "cursor", metadata: { topic: "ui" },
    occurred_at: "2024-06-03T09:30:00.000Z" });
  assert.equal(call.headers.Authorization, "Bearer rsk_test");
  assert.match(call.headers["Idempotency-Key"], /^[0-9a-f-]{36}$/);
  assert.match(call.headers["X-Request-ID"], /^[0-9a-f]{32}$/);
});

test("add: messages, infer and mem0's timestamp", async () => {
  const { fetch, seen } = scripted(written("memory-events/0:1"));
  const c = client(fetch);
  await c.add([{ role: "user", content: "hi" }, { role: "assistant", content: "hello" }], { user_id: "bob", run_id: "s1" });
  await c.add("I moved to Lisbon", { user_id: "bob", infer: true, timestamp: 1717407000 });
  await c.add({ role: "user", content: "one" }, { user_id: "bob" });
  assert.deepEqual(seen[0].body.messages.map((m) => m.role), ["user", "assistant"]);
  assert.deepEqual(seen[1].body, { user_id: "bob", messages: [{ role: "user", content: "I moved to Lisbon" }], infer: true,
    occurred_at: "2024-06-03T09:30:00.000Z" });
  assert.deepEqual(seen[2].body.messages, [{ role: "user", content: "one" }]);
});

test("a retried write keeps its idempotency key, its request id and its bytes", async () => {
  const { fetch, seen } = scripted(json(503, { error: { code: "unavailable", message: "Kafka" } }, { "retry-after": "0" }),
    new TypeError("fetch failed"), json(409, { error: { code: "idempotency_in_progress", message: "running" } }),
    written("memory-events/0:9"));
  const result = await client(fetch).add("x", { user_id: "alice" });
  assert.equal(result.consistency_token, "memory-events/0:9");
  assert.equal(seen.length, 4);
  assert.equal(new Set(seen.map((s) => s.headers["Idempotency-Key"])).size, 1);
  assert.equal(new Set(seen.map((s) => s.headers["X-Request-ID"])).size, 1);
  assert.equal(new Set(seen.map((s) => JSON.stringify(s.body))).size, 1);
});

test("a caller's idempotency key is used as given", async () => {
  const { fetch, seen } = scripted(written("memory-events/0:1"));
  await client(fetch).delete(MEMORY, { user_id: "alice", idempotency_key: "mine-1" });
  assert.equal(seen[0].headers["Idempotency-Key"], "mine-1");
  assert.equal(seen[0].method, "DELETE");
  assert.equal(seen[0].url.searchParams.get("user_id"), "alice");
});

test("read-your-writes: the user's merged token goes with its next reads, in body, query or header", async () => {
  const { fetch, seen } = scripted(written("memory-events/0:5,1:7"), written("memory-events/0:3,2:1"),
    json(200, { results: [], degraded: [] }), json(200, { id: MEMORY }), json(200, { history: [{ event: "MemoryCreated" }] }),
    written("memory-events/1:9"), json(200, { results: [], degraded: [] }));
  const c = client(fetch);
  await c.add("a", { user_id: "alice" });
  await c.add("b", { user_id: "alice" }); // an answer for an older write never moves the token back
  assert.equal(c.latestToken("alice"), "memory-events/0:5,1:7,2:1");
  await c.search("q", { user_id: "alice" });
  assert.equal(seen[2].body.consistency_token, "memory-events/0:5,1:7,2:1");
  await c.get(MEMORY, { user_id: "alice" });
  assert.equal(seen[3].url.searchParams.get("consistency_token"), "memory-events/0:5,1:7,2:1");
  assert.deepEqual(await c.history(MEMORY, { user_id: "alice" }), [{ event: "MemoryCreated" }]);
  await c.update(MEMORY, "new", { user_id: "alice" });
  assert.equal(seen[5].headers["X-Consistency-Token"], "memory-events/0:5,1:7,2:1");
  await c.search("q", { user_id: "bob" }); // another user's reads wait for nothing
  assert.equal(seen[6].body.consistency_token, undefined);
});

test("eventual consistency passes no remembered token; an explicit one is still sent", async () => {
  const { fetch, seen } = scripted(written("memory-events/0:5"), json(200, { results: [], degraded: [] }));
  const c = client(fetch, { consistency: "eventual" });
  await c.add("a", { user_id: "alice" });
  await c.search("q", { user_id: "alice" });
  assert.equal(seen[1].body.consistency_token, undefined);
  await c.search("q", { user_id: "alice", consistency_token: "memory-events/0:2" });
  assert.equal(seen[2].body.consistency_token, "memory-events/0:2");
});

test("the key's own user (no user_id) has read-your-writes too", async () => {
  const { fetch, seen } = scripted(written("memory-events/3:4"), json(200, { results: [], page: 1, page_size: 100, total: 0, has_more: false }));
  const c = client(fetch);
  await c.add("a");
  assert.equal(seen[0].body.user_id, undefined);
  await c.getAll();
  assert.equal(seen[1].url.searchParams.get("consistency_token"), "memory-events/3:4");
  assert.equal(seen[1].url.searchParams.get("user_id"), null);
});

test("errors: the API's body as typed errors, with what was tried", async () => {
  const cases = [[400, InvalidRequest], [422, InvalidRequest], [401, AuthenticationError], [403, AuthenticationError],
    [404, NotFound], [409, Conflict], [500, RecallstackError]];
  for (const [status, Kind] of cases) {
    const { fetch } = scripted(json(status, { error: { code: `c${status}`, message: `m${status}`, details: { field: "text" } } },
      { "x-request-id": "abc" }));
    const error = await client(fetch).get(MEMORY, { user_id: "alice" }).catch((e) => e);
    assert.ok(error instanceof Kind && error instanceof RecallstackError, `${status}: ${error}`);
    assert.equal(error.status, status);
    assert.equal(error.code, `c${status}`);
    assert.equal(error.message, `m${status}`);
    assert.deepEqual(error.details, { field: "text" });
    assert.equal(error.requestId, "abc");
    assert.equal(error.method, "GET");
    assert.match(error.describe(), new RegExp(`^${status} c${status}: m${status} \\(GET http://recall.test/v1/memories/`));
  }
  const { fetch } = scripted(new Response("<html>bad gateway</html>", { status: 418 }));
  const plain = await client(fetch).me().catch((e) => e);
  assert.equal(plain.message, "<html>bad gateway</html>");
});

test("after the retry budget: RateLimited, Unavailable, with the attempts and why", async () => {
  const limited = scripted(json(429, { error: { code: "rate_limited", message: "slow down" } }, { "retry-after": "0" }));
  const error = await client(limited.fetch, { retry: new RetryPolicy({ maxAttempts: 3, baseDelayMs: 1 }) })
    .search("q", { user_id: "alice" }).catch((e) => e);
  assert.ok(error instanceof RateLimited && error instanceof Unavailable);
  assert.equal(error.attempts, 3);
  assert.equal(error.retryAfter, 0);
  assert.match(error.message, /slow down \(gave up after 3 attempts\)/);
  assert.equal(limited.seen.length, 3);

  const down = scripted(new TypeError("fetch failed", { cause: new Error("connect ECONNREFUSED") }));
  const unreachable = await client(down.fetch, { retry: new RetryPolicy({ maxAttempts: 2, baseDelayMs: 1 }) })
    .me().catch((e) => e);
  assert.ok(unreachable instanceof Unavailable);
  assert.equal(unreachable.status, null);
  assert.match(unreachable.message, /could not reach recallstack at http:\/\/recall.test: TypeError: fetch failed \(connect ECONNREFUSED\); gave up after 2 attempts/);
});

test("a try that outlives the timeout is abandoned and retried", async () => {
  let tries = 0;
  const fetch = (url, init) => new Promise((done, fail) => {
    tries += 1;
    if (tries === 2) return done(json(200, { user_id: "alice" }));
    init.signal.addEventListener("abort", () => fail(init.signal.reason));
  });
  const c = new RecallstackClient({ baseUrl: "http://recall.test", apiKey: "k", fetch, timeoutMs: 20, retry: fast });
  assert.deepEqual(await c.me(), { user_id: "alice" });
  assert.equal(tries, 2);
});

test("arguments are checked before anything is sent", async () => {
  const { fetch, seen } = scripted(written("memory-events/0:1"));
  const c = client(fetch);
  await assert.rejects(() => c.get("../../v1/keys", { user_id: "alice" }), (e) => e instanceof InvalidRequest && e.details.field === "memory_id");
  await assert.rejects(() => c.add("x", { user_id: "al/ice" }), (e) => e instanceof InvalidRequest && e.details.field === "user_id");
  await assert.rejects(() => c.add("x", { user_id: "a", agent_id: "" }), (e) => e.details.field === "agent_id");
  await assert.rejects(() => c.add(42, { user_id: "a" }), (e) => e.details.field === "messages");
  await assert.rejects(() => c.add("x", { user_id: "a", occurred_at: "2024", timestamp: 1 }), (e) => e.details.field === "timestamp");
  await assert.rejects(() => c.search("q", { user_id: "a", limit: 3, top_k: 5 }), (e) => e.details.field === "top_k");
  await assert.rejects(() => c.search("q", { user_id: "a", filters: { user_id: "b" } }), (e) => e.details.field === "filters.user_id");
  await assert.rejects(() => c.add("x", { user_id: "a", colour: "red" }), TypeError);
  await assert.rejects(() => client(fetch, { apiKey: null }).add("x"), (e) => e.details.field === "user_id");
  assert.throws(() => new RecallstackClient({ baseUrl: "ftp://x", fetch }), InvalidRequest);
  assert.equal(seen.length, 0);
});

test("mem0's v2 filters: the user inside them is the call's user", async () => {
  const { fetch, seen } = scripted(json(200, { results: [], degraded: [] }));
  await client(fetch).search("q", { filters: { AND: [{ user_id: "alice" }, { metadata: { topic: "ui" } }] }, top_k: 3 });
  assert.deepEqual(seen[0].body, { query: "q", user_id: "alice", filters: { AND: [{ metadata: { topic: "ui" } }] }, limit: 3 });
});

test("getAll: paging, scope and filters as query parameters", async () => {
  const { fetch, seen } = scripted(json(200, { results: [], page: 2, page_size: 5, total: 0, has_more: false }));
  await client(fetch).getAll({ user_id: "alice", run_id: "s1", page: 2, page_size: 5, filters: { categories: { contains: "x" } },
    state: "forgotten", include_archived: false });
  const q = seen[0].url.searchParams;
  assert.deepEqual(Object.fromEntries(q), { user_id: "alice", run_id: "s1", page: "2", page_size: "5",
    filters: '{"categories":{"contains":"x"}}', state: "forgotten", include_archived: "false" });
});

test("withOptions shares the tokens; mergeTokens keeps the highest offsets", async () => {
  const { fetch } = scripted(written("memory-events/0:5"));
  const c = client(fetch);
  const other = c.withOptions({ apiKey: "rsk_other", userId: "alice" });
  await other.add("x");
  assert.equal(c.latestToken("alice"), "memory-events/0:5");
  assert.equal(c.apiKey, "rsk_test");
  assert.equal(mergeTokens("t/0:5,1:2", "t/1:1,2:3"), "t/0:5,1:2,2:3");
  assert.equal(mergeTokens("t/0:5", "other/0:1"), "other/0:1");
  assert.equal(mergeTokens("garbage", "t/0:1"), "t/0:1");
});
