// A memory's expiry in the requests the client builds, with a stand-in fetch (pure unit logic: no server;
// tests/e2e/test_expiry.py runs expiry against the real stack).
import assert from "node:assert/strict";
import { test } from "node:test";

import { InvalidRequest, RecallstackClient, RetryPolicy } from "../../dist/index.js";

const MEMORY = "6f1c2a9e-0d7b-4c1e-9a55-3e2b8f0a1c44";

function recording() {
  const seen = [];
  const fetch = async (url, init) => {
    seen.push({ url: new URL(url), body: init.body ? JSON.parse(init.body) : undefined });
    return new Response(JSON.stringify({ results: [{ id: MEMORY, event: "ADD", status: "processing" }],
      consistency_token: "t/0:1" }), { status: 202, headers: { "content-type": "application/json" } });
  };
  const client = new RecallstackClient({ baseUrl: "http://recall.test", apiKey: "rsk_test", fetch,
    retry: new RetryPolicy({ baseDelayMs: 1, maxDelayMs: 2 }) });
  return { client, seen };
}

test("add carries expires_at, ttl_seconds, or mem0's inclusive expiration_date as expires_at", async () => {
  const { client, seen } = recording();
  await client.add("on call", { user_id: "alice", expires_at: new Date(Date.UTC(2030, 0, 31, 12)) });
  await client.add("on call", { user_id: "alice", ttl_seconds: 60 });
  await client.add("on call", { user_id: "alice", expiration_date: "2030-01-31" });
  assert.equal(seen[0].body.expires_at, "2030-01-31T12:00:00.000Z");
  assert.equal(seen[1].body.ttl_seconds, 60);
  assert.equal(seen[2].body.expires_at, "2030-02-01T00:00:00.000Z");
  await assert.rejects(client.add("x", { user_id: "alice", expires_at: "2030-01-01", expiration_date: "2030-01-01" }),
    InvalidRequest);
});

test("update sends expires_at null to clear the expiry, and nothing when it is left out", async () => {
  const { client, seen } = recording();
  await client.update(MEMORY, { user_id: "alice", expires_at: null });
  await client.update(MEMORY, "new text", { user_id: "alice" });
  await client.update(MEMORY, { user_id: "alice", expiration_date: null });
  assert.deepEqual(seen[0].body, { expires_at: null });
  assert.deepEqual(seen[1].body, { text: "new text" });
  assert.deepEqual(seen[2].body, { expires_at: null });
});

test("getAll passes include_expired", async () => {
  const { client, seen } = recording();
  await client.getAll({ user_id: "alice", include_expired: true });
  assert.equal(seen[0].url.searchParams.get("include_expired"), "true");
});
