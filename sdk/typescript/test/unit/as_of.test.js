// `as_of` on search, getAll, get and getContext (issue 26 item 4): where each request carries it, with a stand-in
// fetch (pure unit logic: tests/e2e/test_as_of.py runs the Python SDK against the real stack).
import assert from "node:assert/strict";
import { test } from "node:test";

import { RecallstackClient, RetryPolicy } from "../../dist/index.js";

const MEMORY = "6f1c2a9e-0d7b-4c1e-9a55-3e2b8f0a1c44";
const TOKEN = "recallstack.memory.events/3:41";

function recording(body) {
  const seen = [];
  const fetch = async (url, init) => {
    seen.push({ url: new URL(url), body: init.body ? JSON.parse(init.body) : undefined });
    return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
  };
  return { seen, client: new RecallstackClient({ baseUrl: "http://recall.test", apiKey: "rsk_test", fetch,
    retry: new RetryPolicy({ baseDelayMs: 1, maxDelayMs: 2 }) }) };
}

test("search and getContext send as_of in the body, a Date as ISO 8601; none when not given", async () => {
  const { seen, client } = recording({ results: [], degraded: [] });
  await client.search("deploy", { user_id: "alice", as_of: new Date("2026-05-01T14:00:00Z") });
  await client.getContext("deploy", { user_id: "alice", as_of: TOKEN });
  await client.search("deploy", { user_id: "alice" });
  assert.equal(seen[0].body.as_of, "2026-05-01T14:00:00.000Z");
  assert.equal(seen[1].body.as_of, TOKEN);
  assert.equal("as_of" in seen[2].body, false);
});

test("getAll and get send as_of as a query parameter", async () => {
  const { seen, client } = recording({ id: MEMORY, results: [] });
  await client.getAll({ user_id: "alice", as_of: TOKEN });
  await client.get(MEMORY, { user_id: "alice", as_of: "2026-05-01T14:00:00Z" });
  await client.get(MEMORY, { user_id: "alice" });
  assert.equal(seen[0].url.searchParams.get("as_of"), TOKEN);
  assert.equal(seen[1].url.searchParams.get("as_of"), "2026-05-01T14:00:00Z");
  assert.equal(seen[2].url.searchParams.has("as_of"), false);
});
