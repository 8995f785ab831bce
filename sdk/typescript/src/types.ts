// The shapes the API answers with: plain JSON objects (as mem0's JavaScript client returns), times as
// ISO 8601 strings. Fields the server may add later pass through untouched.

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type Metadata = Record<string, unknown>;

export interface Message {
  role: "user" | "assistant" | "system" | string;
  content: string;
  [key: string]: unknown;
}

/** One memory as the query API returns it (search adds score, similarity, ranks; a shared one `shared`). */
export interface Memory {
  id: string;
  memory: string;
  user_id: string;
  agent_id: string | null;
  run_id: string | null;
  app_id: string | null;
  metadata: Metadata;
  categories: string[];
  importance: number;
  state: string;
  created_at: string;
  updated_at: string;
  occurred_at: string | null;
  version: number;
  access_count?: number;
  last_accessed_at?: string | null;
  /** When it stops being true (null: never); `expired`: that time has passed. */
  expires_at?: string | null;
  expired?: boolean;
  [key: string]: unknown;
}

/** A search hit: a memory with its fused score in [0, 1], cosine similarity and rank per source. */
export interface SearchHit extends Memory {
  score: number;
  similarity?: number | null;
  ranks: Record<string, number>;
  /** With rerank: the cross-encoder's score, which the order follows. */
  rerank_score?: number;
}

/** One memory a write touched: event ADD, UPDATE or DELETE; status "processing" until applied. */
export interface WriteEvent {
  id: string;
  memory?: string | null;
  event: string;
  status?: string | null;
  [key: string]: unknown;
}

/** What add, update, delete, restore and deleteAll answer (202 Accepted). */
export interface WriteResult {
  results: WriteEvent[];
  consistency_token?: string;
  conversation_id?: string;  // add with infer: the queued conversation
  status?: string;           // "queued" (infer) / "processing" (deleteAll)
  event?: string;            // "DELETE_ALL" for deleteAll
  scope?: Record<string, string>;
  [key: string]: unknown;
}

export interface Degraded {
  source: string;
  reason: string;
  [key: string]: unknown;
}

export interface SearchResult {
  results: SearchHit[];
  degraded: Degraded[];
  cache?: string;
  explain?: Record<string, unknown>;
  timings_ms?: Record<string, number>;
  [key: string]: unknown;
}

export interface MemoryPage {
  results: Memory[];
  page: number;
  page_size: number;
  total: number;
  has_more: boolean;
  [key: string]: unknown;
}

/** One change of a memory, from the log (event MemoryCreated, MemoryUpdated, ...). */
export interface HistoryEntry {
  event_id: string;
  event: string;
  actor: string | null;
  correlation_id: string | null;
  at: string;
  before: { memory?: string; metadata?: Metadata; [key: string]: unknown } | null;
  after: { memory?: string; metadata?: Metadata; [key: string]: unknown } | null;
  reason: string | null;
  log_position?: Record<string, unknown> | null;
  [key: string]: unknown;
}

/** A ready-to-inject context block that fits max_tokens (counted exactly with `encoding`). */
export interface Context {
  context: string;
  tokens: number;
  max_tokens?: number;
  encoding?: string;
  memories: SearchHit[];
  omitted: number;
  degraded: Degraded[];
  [key: string]: unknown;
}

/** GET /v1/me: who the API key is. */
export interface Me {
  user_id: string;
  scopes: string[];
  key_prefix: string;
  key_id: string;
  auth: string;
  [key: string]: unknown;
}

/** GET /v1/graph: the user's entities, relations and co-mentions. */
export interface Graph {
  user_id: string;
  entities: { name: string; type: string; mentions: number; aliases?: string[] }[];
  relations: { source: string; target: string; type: string; memory_id: string; valid_from: string; valid_to: string | null }[];
  co_mentions: { source: string; source_type: string; target: string; target_type: string; weight: number }[];
  [key: string]: unknown;
}

/** One item of a profile section, with the memories it came from. */
export interface ProfileItem {
  text: string;
  memory_ids: string[];
}

/** GET /v1/users/{id}/profile: a structured summary of the user, from their memories. `version` 0: built on read
 * (none appended yet); `stale`: memories changed since it was built (the consolidation worker refreshes it). */
export interface Profile {
  user_id: string;
  version: number;
  updated_at: string | null;
  built_from: string | null;
  builder: string;
  memory_count: number;
  stale: boolean;
  profile: {
    preferences: ProfileItem[];
    facts: ProfileItem[];
    projects: ProfileItem[];
    tools: ProfileItem[];
    people: ProfileItem[];
    instructions: ProfileItem[];
    [section: string]: ProfileItem[];
  };
  [key: string]: unknown;
}

/** GET /v1/namespaces: the user's memories counted per app and per agent. */
export interface Namespaces {
  user_id: string;
  memories: number;
  apps: { app_id: string; memories: number }[];
  agents: { agent_id: string; memories: number }[];
  [key: string]: unknown;
}
