// Core memory blocks (docs/api.md, "Core memory blocks"): small named texts a user's agents always
// see first in a context, edited with Letta's operations. `client.coreMemory` returns this view of a
// client; every call goes through the client's `request` (its retries, keys, consistency tokens and
// errors), so a read sees the edits before it without passing tokens.
//
//   await client.coreMemory.append("human", "Ana lives in Lyon", { user_id: "ana" });
//   const block = await client.coreMemory.read("human", { user_id: "ana" }); // block.value

import { InvalidRequest } from "./errors.js";
import { optionalId } from "./ids.js";
import type { WriteResult } from "./types.js";

/** The API's label pattern (domain/core_memory.py): 1-64 of a-z 0-9 _ -, starting with a letter or digit. */
export const LABEL_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export interface Block {
  label: string;
  agent_id: string | null;  // null: user-wide
  value: string;
  tokens: number;           // what the value holds, in cl100k_base
  limit_tokens: number;
  description: string | null;
  version: number;          // 1 at creation, +1 per edit
  created_at: string | null;
  updated_at: string | null;
}

export interface BlockChange {
  event_id: string;
  event_type: string;       // CoreMemoryBlockCreated, ...Appended, ...Replaced, ...Deleted
  actor: string;
  occurred_at: string;
  version: number | null;
  old_value: string | null;
  new_value: string | null;
  applied: boolean;         // false: skipped, `skipped` says why
  skipped: string | null;
}

/** Whose block: `user_id` (default the client's) and `agent_id` (none: the user-wide block). */
export interface BlockScope { user_id?: string | null; agent_id?: string | null }
export interface BlockRead extends BlockScope { consistency_token?: string }
export interface BlockWrite extends BlockScope { idempotency_key?: string }
export interface BlockSet extends BlockWrite { limit_tokens?: number; description?: string }

/** What `RecallstackClient.request` offers (the client without importing it: no cycle). */
interface Requester {
  request<T = unknown>(method: string, path: string, options?: Record<string, unknown>): Promise<T>;
}

function labelPath(label: unknown, suffix = ""): string {
  if (typeof label !== "string" || !LABEL_RE.test(label)) {
    throw new InvalidRequest(`label: not a block label (1-64 of a-z 0-9 _ -, starting with a letter or digit): `
      + `${JSON.stringify(label)?.slice(0, 80)}`, { code: "invalid_request", details: { field: "label" } });
  }
  return `/v1/core-memory/${encodeURIComponent(label)}${suffix}`;
}

export class CoreMemory {
  constructor(private readonly client: Requester, private readonly defaultUser: () => string | null) {}

  private scope(options: BlockScope) {
    const user = optionalId(options.user_id ?? this.defaultUser(), "user_id");
    const query: Record<string, string> = {};
    if (user) query.user_id = user;
    const agent = optionalId(options.agent_id, "agent_id");
    if (agent) query.agent_id = agent;
    return { query, user_id: user ?? null };
  }

  private write(method: string, path: string, options: BlockWrite, body?: unknown): Promise<WriteResult> {
    return this.client.request(method, path, { ...this.scope(options), body, write: true,
      idempotency_key: options.idempotency_key });
  }

  /** One block; NotFound for an unknown label. */
  read(label: string, options: BlockRead = {}): Promise<Block> {
    return this.client.request("GET", labelPath(label), { ...this.scope(options), token_in: "query",
      consistency_token: options.consistency_token });
  }

  /** The user-wide blocks, or one agent's, oldest first. */
  async list(options: BlockRead = {}): Promise<Block[]> {
    const answer = await this.client.request<{ results?: Block[] }>("GET", "/v1/core-memory", { ...this.scope(options),
      token_in: "query", consistency_token: options.consistency_token });
    return answer.results ?? [];
  }

  /** Create the block, or set its whole value (and its limit or description when given). */
  set(label: string, value: string, options: BlockSet = {}): Promise<WriteResult> {
    const body: Record<string, unknown> = { value };
    if (options.limit_tokens !== undefined) body.limit_tokens = options.limit_tokens;
    if (options.description !== undefined) body.description = options.description;
    return this.write("PUT", labelPath(label), options, body);
  }

  /** Letta's core_memory_append: `content` on a new line; InvalidRequest (block_too_large) past the limit. */
  append(label: string, content: string, options: BlockWrite = {}): Promise<WriteResult> {
    return this.write("POST", labelPath(label, "/append"), options, { content });
  }

  /** Letta's core_memory_replace: every occurrence of `oldContent` becomes `newContent` ("" deletes it). */
  replace(label: string, oldContent: string, newContent: string, options: BlockWrite = {}): Promise<WriteResult> {
    return this.write("POST", labelPath(label, "/replace"), options, { old_content: oldContent, new_content: newContent });
  }

  /** Delete the block (its history stays until the user is erased). */
  delete(label: string, options: BlockWrite = {}): Promise<WriteResult> {
    return this.write("DELETE", labelPath(label), options);
  }

  /** Every edit of the block, in log order (a deleted block's too). */
  async history(label: string, options: BlockRead = {}): Promise<BlockChange[]> {
    const answer = await this.client.request<{ history?: BlockChange[] }>("GET", labelPath(label, "/history"), {
      ...this.scope(options), token_in: "query", consistency_token: options.consistency_token });
    return answer.history ?? [];
  }
}
