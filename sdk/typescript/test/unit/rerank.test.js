// rerank reaches the bodies of search and getContext (a stand-in fetch: pure unit logic; the server side is
// tests/e2e/test_rerank.py).
import assert from "node:assert/strict";
import { test } from "node:test";

import { RecallstackClient } from "../../dist/index.js";

test("search and getContext send rerank; an unknown option is still refused", async () => {
  const seen = [];
  const fetch = async (url, init) => {
    seen.push({ path: new URL(url).pathname, body: JSON.parse(init.body) });
    const answer = seen.at(-1).path === "/v1/context" ? { context: "", tokens: 0, memories: [], omitted: 0 }
      : { results: [{ id: "6f1c2a9e-0d7b-4c1e-9a55-3e2b8f0a1c44", memory: "m", score: 0.4, rerank_score: 7.5, ranks: {} }], degraded: [] };
    return new Response(JSON.stringify(answer), { status: 200, headers: { "content-type": "application/json" } });
  };
  const client = new RecallstackClient({ baseUrl: "http://recall.test", apiKey: "rsk_test", fetch });
  const found = await client.search("q", { user_id: "alice", rerank: true });
  await client.getContext("q", { user_id: "alice", rerank: true });
  await client.search("q", { user_id: "alice" });
  assert.deepEqual(seen[0].body, { query: "q", user_id: "alice", rerank: true });
  assert.equal(seen[1].path, "/v1/context");
  assert.equal(seen[1].body.rerank, true);
  assert.equal("rerank" in seen[2].body, false);
  assert.equal(found.results[0].rerank_score, 7.5);
  await assert.rejects(client.search("q", { user_id: "alice", rerank_with: "x" }), /rerank_with/);
});
