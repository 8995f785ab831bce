// Expiry through the TypeScript SDK against the running stack (tests/e2e/test_sdk_ts.py starts it): an
// add with ttl_seconds shows its expires_at, mem0's inclusive expiration_date becomes the next midnight
// UTC, update with expires_at null clears it, and a past expiry is an InvalidRequest naming the field.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import { InvalidRequest, RecallstackClient } from "../../dist/index.js";

const baseUrl = process.env.RECALLSTACK_URL;
const apiKey = process.env.RECALLSTACK_API_KEY;
if (!baseUrl) throw new Error("RECALLSTACK_URL: the base URL of a running stack (tests/e2e/test_sdk_ts.py sets it)");

test("expires_at, ttl_seconds and expiration_date, set, shown and cleared", async () => {
  const c = new RecallstackClient({ baseUrl, apiKey });
  const user = `ts-${randomUUID().slice(0, 12)}`;
  const week = (await c.add("The release branch is frozen", { user_id: user, ttl_seconds: 7 * 86400 })).results[0].id;
  const day = (await c.add("The office is closed", { user_id: user, expiration_date: "2099-01-31" })).results[0].id;
  const listed = Object.fromEntries((await c.getAll({ user_id: user })).results.map((m) => [m.id, m]));
  assert.equal(new Date(listed[day].expires_at).toISOString(), "2099-02-01T00:00:00.000Z");
  assert.ok(new Date(listed[week].expires_at).getTime() > Date.now() + 6 * 86400_000);
  assert.equal(listed[week].expired, false);
  await c.update(week, { user_id: user, expires_at: null });
  assert.equal((await c.get(week, { user_id: user })).expires_at, null);
  const withExpired = await c.getAll({ user_id: user, include_expired: true });
  assert.equal(withExpired.total, 2);
  await assert.rejects(c.add("x", { user_id: user, expires_at: "2001-01-01T00:00:00Z" }),
    (error) => error instanceof InvalidRequest && /expires_at/.test(error.message));
});
