// The TypeScript SDK against the running stack (tests/e2e/test_sdk_ts.py starts it and passes
// RECALLSTACK_URL and RECALLSTACK_API_KEY, the session's admin key): every method, read-your-writes
// without handling tokens, idempotent retries of a write, typed errors from the real API, a user key's
// implicit user.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import { AuthenticationError, InvalidRequest, NotFound, RecallstackClient } from "../../dist/index.js";

const baseUrl = process.env.RECALLSTACK_URL;
const apiKey = process.env.RECALLSTACK_API_KEY;
if (!baseUrl) throw new Error("RECALLSTACK_URL: the base URL of a running stack (tests/e2e/test_sdk_ts.py sets it)");

const newUser = () => `ts-${randomUUID().slice(0, 12)}`;
const client = (options = {}) => new RecallstackClient({ baseUrl, apiKey, ...options });

test("every method, each read seeing the writes before it", async () => {
  const c = client();
  const user = newUser();
  const added = await c.add("Alice prefers dark mode in the editor", { user_id: user, agent_id: "cursor",
    metadata: { topic: "ui" }, categories: ["preferences"], occurred_at: new Date(Date.UTC(2024, 5, 3, 9, 30)) });
  assert.ok(added.consistency_token);
  assert.equal(added.results.length, 1);
  assert.equal(added.results[0].event, "ADD");
  const memoryId = added.results[0].id;
  await c.add([{ role: "user", content: "I deploy with make release" },
    { role: "assistant", content: "Noted: you deploy with make release" }], { user_id: user, run_id: "session-1", infer: false });

  const found = await c.search("which theme does Alice like?", { user_id: user, limit: 5 });
  assert.equal(found.results[0].id, memoryId);
  assert.equal(found.results[0].memory, "Alice prefers dark mode in the editor");
  assert.ok(found.results[0].score > 0);

  const got = await c.get(memoryId, { user_id: user });
  assert.equal(got.agent_id, "cursor");
  assert.deepEqual(got.categories, ["preferences"]);
  assert.deepEqual(got.metadata, { topic: "ui" });
  assert.equal(Date.parse(got.occurred_at), Date.UTC(2024, 5, 3, 9, 30));

  const page = await c.getAll({ user_id: user, page_size: 2 });
  assert.equal(page.total, 3);
  assert.equal(page.results.length, 2);
  assert.equal(page.has_more, true);
  const second = await c.getAll({ user_id: user, page: 2, page_size: 2 });
  assert.ok(!page.results.some((m) => m.id === second.results[0].id));
  const session = await c.getAll({ user_id: user, run_id: "session-1" });
  assert.deepEqual(session.results.map((m) => m.metadata.role).sort(), ["assistant", "user"]);
  const ui = await c.getAll({ user_id: user, filters: { metadata: { topic: "ui" } } });
  assert.deepEqual(ui.results.map((m) => m.id), [memoryId]);

  const updated = await c.update(memoryId, "Alice prefers light mode now", { user_id: user, metadata: { topic: "theme" } });
  assert.equal(updated.results[0].event, "UPDATE");
  assert.equal((await c.get(memoryId, { user_id: user })).memory, "Alice prefers light mode now");

  const history = await c.history(memoryId, { user_id: user });
  assert.deepEqual(history.map((h) => h.event), ["MemoryCreated", "MemoryUpdated"]);
  assert.equal(history[1].before.memory, "Alice prefers dark mode in the editor");
  assert.equal(history[1].after.memory, "Alice prefers light mode now");

  const context = await c.getContext("what theme does Alice use?", { user_id: user, max_tokens: 200 });
  assert.match(context.context, /Alice prefers light mode now/);
  assert.ok(context.tokens > 0 && context.tokens <= 200);
  assert.ok(context.memories.some((m) => m.id === memoryId));

  const deleted = await c.delete(memoryId, { user_id: user });
  assert.equal(deleted.results[0].event, "DELETE");
  await assert.rejects(() => c.get(memoryId, { user_id: user }), (e) => e instanceof NotFound && e.status === 404 && e.code === "not_found");
  assert.ok(!(await c.search("theme", { user_id: user })).results.some((m) => m.id === memoryId));

  const cleared = await c.deleteAll({ user_id: user, run_id: "session-1" });
  assert.equal(cleared.event, "DELETE_ALL");
  assert.deepEqual(cleared.scope, { user_id: user, run_id: "session-1" });
  assert.equal((await c.getAll({ user_id: user })).total, 0);
});

test("a write sent twice with one idempotency key is applied once", async () => {
  const c = client();
  const user = newUser();
  const key = `ts-e2e-${randomUUID()}`;
  const first = await c.add("I water the plants on Sundays", { user_id: user, idempotency_key: key });
  const again = await c.add("I water the plants on Sundays", { user_id: user, idempotency_key: key });
  assert.equal(again.results[0].id, first.results[0].id);
  assert.equal((await c.getAll({ user_id: user })).total, 1);
});

test("forgotten memories come back with restore", async () => {
  const c = client();
  const user = newUser();
  const [{ id }] = (await c.add("A note to forget", { user_id: user })).results;
  await c.delete(id, { user_id: user });
  const page = await c.getAll({ user_id: user, state: "any" });
  assert.equal(page.total, 0); // deleted: not forgotten, so not restorable
  await assert.rejects(() => c.restore(id, { user_id: user }), (e) => e instanceof NotFound);
});

test("the API's errors arrive typed, with code, field and request id", async () => {
  const c = client();
  const user = newUser();
  const invalid = await c.search("x".repeat(20_000), { user_id: user }).catch((e) => e);
  assert.ok(invalid instanceof InvalidRequest, String(invalid));
  assert.equal(invalid.status, 422);
  assert.ok(invalid.code);
  assert.deepEqual(invalid.details.errors.map((e) => e.field), ["query"]); // a validation error names each field
  assert.match(invalid.requestId, /^[0-9a-f]{32}$/);

  const missing = await c.get(randomUUID(), { user_id: user }).catch((e) => e);
  assert.ok(missing instanceof NotFound);
  assert.equal(missing.details.field, "memory_id");

  const refused = await client({ apiKey: "rsk_not_a_key_at_all" }).me().catch((e) => e);
  assert.ok(refused instanceof AuthenticationError, String(refused));
  assert.equal(refused.status, 401);
});

test("a user key: no user_id anywhere, and its own reads see its writes", async () => {
  const admin = client();
  const user = newUser();
  const issued = await admin.request("POST", "/v1/keys", { body: { user_id: user, scopes: ["read", "write"] } });
  const mine = client({ apiKey: issued.key });
  assert.equal((await mine.me()).user_id, user);
  const [{ id }] = (await mine.add("My bike is a blue Brompton")).results;
  assert.equal((await mine.get(id)).memory, "My bike is a blue Brompton");
  assert.deepEqual((await mine.getAll()).results.map((m) => m.id), [id]);
  assert.equal((await mine.search("what bike do I ride?")).results[0].id, id);
  assert.equal((await mine.namespaces()).memories, 1);
  const graph = await mine.graph();
  assert.equal(graph.user_id, user);
  const batch = await mine.addBatch([{ text: "I drink oat milk" }, { text: "I live in Porto" }]);
  assert.equal(batch.results.length, 2);
  assert.equal((await mine.getAll()).total, 3);
  await assert.rejects(() => mine.get(id, { user_id: newUser() }), (e) => e instanceof AuthenticationError || e instanceof NotFound);
});

test("getProfile: the user's profile, each item citing its memories; NotFound without memories", async () => {
  const c = client();
  const user = newUser();
  await assert.rejects(() => c.getProfile(user), (e) => e instanceof NotFound && e.status === 404);
  const tea = (await c.add("I prefer green tea to coffee", { user_id: user, infer: false })).results[0].id;
  const rule = (await c.add("Always answer in French", { user_id: user, infer: false })).results[0].id;
  const profile = await c.getProfile(user); // no worker pass yet: built on read (version 0), sees the writes
  assert.equal(profile.user_id, user);
  assert.equal(profile.version, 0);
  assert.deepEqual(profile.profile.preferences, [{ text: "I prefer green tea to coffee", memory_ids: [tea] }]);
  assert.deepEqual(profile.profile.instructions, [{ text: "Always answer in French", memory_ids: [rule] }]);
  assert.deepEqual(Object.keys(profile.profile).sort(), ["facts", "instructions", "people", "preferences", "projects", "tools"]);
});
