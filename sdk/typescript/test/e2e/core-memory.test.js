// Core memory blocks through the TypeScript SDK against the running stack (tests/e2e/test_sdk_ts.py runs it):
// set, append, replace, read with no token handling, list, history, delete; refusals as typed errors.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import { InvalidRequest, NotFound, RecallstackClient } from "../../dist/index.js";

const baseUrl = process.env.RECALLSTACK_URL;
const apiKey = process.env.RECALLSTACK_API_KEY;
if (!baseUrl) throw new Error("RECALLSTACK_URL: the base URL of a running stack (tests/e2e/test_sdk_ts.py sets it)");

test("core memory blocks: edit, read, history and refusals", async () => {
  const user = `ts-${randomUUID().slice(0, 12)}`;
  const core = new RecallstackClient({ baseUrl, apiKey, userId: user }).coreMemory;
  await core.set("human", "Ana.", { limit_tokens: 20, description: "the user" });
  await core.append("human", "Ana lives in Lyon.");
  const replaced = await core.replace("human", "Lyon", "Porto");
  assert.equal(replaced.results[0].event, "REPLACE");
  const block = await core.read("human");
  assert.equal(block.value, "Ana.\nAna lives in Porto.");
  assert.equal(block.version, 3);
  assert.ok(block.tokens > 0 && block.tokens <= 20);
  assert.deepEqual((await core.list()).map((b) => b.label), ["human"]);
  await assert.rejects(core.append("human", "word ".repeat(40)),
    (e) => e instanceof InvalidRequest && e.code === "block_too_large" && e.details.limit_tokens === 20);
  await assert.rejects(core.replace("human", "Berlin", "Rome"), (e) => e instanceof InvalidRequest);
  await assert.rejects(core.read("nothing"), NotFound);
  assert.throws(() => core.read("../memories"), InvalidRequest);
  await core.set("persona", "I review code.", { agent_id: "reviewer" });
  assert.equal((await core.read("persona", { agent_id: "reviewer" })).agent_id, "reviewer");
  await core.delete("human");
  const history = await core.history("human");
  assert.deepEqual(history.map((h) => h.event_type), ["CoreMemoryBlockCreated", "CoreMemoryBlockAppended",
    "CoreMemoryBlockReplaced", "CoreMemoryBlockDeleted"]);
});
