// RecallstackClient: the recallstack REST API with mem0's method names, for Node >= 20 and browsers
// (global fetch only). The methods and their behaviour are the Python SDK's (recallstack/client.py),
// with JavaScript's camelCase method names (getAll, deleteAll, getContext) and the API's snake_case
// option names (user_id, agent_id, ...), as mem0's own JavaScript client has. Each call:
// 1. builds its request once (an Idempotency-Key for writes, the user's latest consistency token for
//    reads, one X-Request-ID);
// 2. sends it, retrying per the RetryPolicy (retry.ts): 429/502/503/504, a 409 idempotency_in_progress
//    and transport failures, honouring Retry-After, with the same key and bytes each time;
// 3. remembers the consistency token of a successful write for that user (read-your-writes), and
//    returns the API's JSON or throws a RecallstackError (errors.ts).

import { CoreMemory } from "./core-memory.js";
import { TokenStore, mergeTokens } from "./consistency.js";
import { InvalidRequest, Unavailable, errorFor, isObject } from "./errors.js";
import { idArg, optionalId, uuidArg } from "./ids.js";
import { RetryPolicy, RetryState, retryAfterSeconds, type Outcome, type RetryOptions } from "./retry.js";
import type {
  Context, Graph, HistoryEntry, Me, Memory, MemoryPage, Message, Metadata, Namespaces, Profile, SearchResult, WriteResult,
} from "./types.js";

export const VERSION = "0.1.0";
export const DEFAULT_URL = "http://127.0.0.1:8080";
export type Consistency = "read_your_writes" | "eventual";
export type When = Date | string | number; // a Date, an ISO 8601 string or Unix seconds (mem0's timestamp)
type Scalar = string | number | boolean | null | undefined;

export interface ClientOptions {
  /** Default: $RECALLSTACK_URL (Node), else http://127.0.0.1:8080. "" means the page's own origin. */
  baseUrl?: string;
  /** mem0's name for baseUrl. */
  host?: string;
  /** Sent as `Authorization: Bearer`; default $RECALLSTACK_API_KEY (Node). */
  apiKey?: string | null;
  /** The default user of every call (an admin key acts for any user; a user key for its own). */
  userId?: string | null;
  /** Per try (default 30000). */
  timeoutMs?: number;
  retry?: RetryPolicy | RetryOptions;
  /** "eventual" stops passing this client's consistency tokens. */
  consistency?: Consistency;
  headers?: Record<string, string>;
  /** A fetch to use instead of the global one (tests, proxies). */
  fetch?: typeof fetch;
}

interface Scope { user_id?: string | null; agent_id?: string | null; run_id?: string | null; app_id?: string | null }
interface Written { idempotency_key?: string }
interface Read {
  consistency_token?: string;
  /** search, getAll, get, getContext: the memories as they were at a past moment, rebuilt from the log (a Date, an
   * ISO 8601 time or a consistency token; docs/api.md, "As of a past moment"). */
  as_of?: Date | string;
}
type Filters = Record<string, unknown>;

export interface AddOptions extends Scope, Written {
  metadata?: Metadata;
  infer?: boolean;
  categories?: string[];
  occurred_at?: When;
  importance?: number;
  timestamp?: When;
  /** When the memory stops being true (a Date or ISO 8601; naive is UTC); reads leave it out from then on. */
  expires_at?: Date | string;
  /** The same in seconds from now; not with expires_at. */
  ttl_seconds?: number;
  /** mem0's name: a YYYY-MM-DD date, inclusive (the memory leaves at the next midnight UTC). */
  expiration_date?: string;
}
export interface SearchOptions extends Scope, Read {
  filters?: Filters;
  limit?: number;
  top_k?: number;
  threshold?: number;
  reference_time?: When;
  include_archived?: boolean;
  explain?: boolean;
  // The query API's extra knobs, passed through as given (docs/api.md).
  sources?: string[];
  weights?: Record<string, number>;
  rrf_k?: number;
  mmr?: boolean | number | Record<string, unknown>;
  temporal?: boolean | Record<string, unknown>;
  cache?: boolean;
  include_shared?: boolean;
  /** Reorder the best results with the server's cross-encoder (each gets rerank_score); a server without one
   * answers InvalidRequest code rerank_not_configured (docs/api.md, "Reranking"). */
  rerank?: boolean;
}
export interface GetAllOptions extends Scope, Read {
  filters?: Filters;
  page?: number;
  page_size?: number;
  limit?: number;
  top_k?: number;
  sort?: "created_at" | "updated_at" | "occurred_at" | "importance";
  order?: "asc" | "desc";
  include_archived?: boolean;
  state?: "active" | "archived" | "forgotten" | "any";
  /** Also memories whose expires_at has passed (each with expired: true). */
  include_expired?: boolean;
}
export interface UpdateOptions extends Written {
  user_id?: string | null;
  text?: string;
  /** mem0's local-SDK name for text. */
  data?: string;
  metadata?: Metadata;
  categories?: string[];
  importance?: number;
  /** A new expiry; null clears it (the memory no longer expires). */
  expires_at?: Date | string | null;
  ttl_seconds?: number;
  /** mem0's name: a YYYY-MM-DD date (inclusive), or null to clear. */
  expiration_date?: string | null;
}
export interface MemoryOptions extends Written { user_id?: string | null }
export interface ReadOptions extends Read { user_id?: string | null }
export interface DeleteAllOptions extends Scope, Written {}
export interface ContextOptions extends Scope, Read {
  max_tokens?: number;
  filters?: Filters;
  encoding?: string;
  candidates?: number;
  reference_time?: When;
  include_shared?: boolean;
  /** The candidates reordered by the server's cross-encoder first, as in search. */
  rerank?: boolean;
}
export interface GraphOptions extends Read { user_id?: string | null; include_closed?: boolean; limit?: number }

/** A request of the API with the client's retries, keys, tokens and errors (`request` for endpoints
 * without a method of their own). */
export interface RequestOptions {
  query?: Record<string, Scalar>;
  body?: unknown;
  headers?: Record<string, string>;
  /** The user whose consistency token the call remembers (a write) or passes (a read). */
  user_id?: string | null;
  /** Default: any method but GET and HEAD. Writes carry an Idempotency-Key. */
  write?: boolean;
  idempotency_key?: string;
  /** Where a read passes the user's consistency token (none by default). */
  token_in?: "body" | "query" | "header";
  consistency_token?: string;
}

interface Call extends RequestOptions { method: string; path: string }
interface Answer { status: number; ok: boolean; headers: Headers; text: string; body: unknown }

// mem0 options that change nothing here (recallstack answers one shape, always asynchronously, with
// the graph always on): accepted so mem0 code runs unchanged. Any other unknown option is refused.
const MEM0_IGNORED = new Set(["version", "output_format", "async_mode", "org_id", "project_id", "enable_graph"]);
const SCOPE = ["user_id", "agent_id", "run_id", "app_id"];
const KNOWN: Record<string, string[]> = {
  add: [...SCOPE, "idempotency_key", "metadata", "infer", "categories", "occurred_at", "importance", "timestamp",
    "expires_at", "ttl_seconds", "expiration_date"],
  search: [...SCOPE, "consistency_token", "as_of", "filters", "limit", "top_k", "threshold", "reference_time",
    "include_archived", "explain", "sources", "weights", "rrf_k", "mmr", "temporal", "cache", "include_shared",
    "rerank"],
  getAll: [...SCOPE, "consistency_token", "as_of", "filters", "page", "page_size", "limit", "top_k", "sort", "order",
    "include_archived", "state", "include_expired"],
  update: ["user_id", "idempotency_key", "text", "data", "metadata", "categories", "importance", "expires_at",
    "ttl_seconds", "expiration_date"],
  deleteAll: [...SCOPE, "idempotency_key"],
};

function refuseUnknown(method: string, options: object): void {
  const known = KNOWN[method] ?? [];
  for (const key of Object.keys(options)) {
    if (!known.includes(key) && !MEM0_IGNORED.has(key)) throw new TypeError(`${method}(): unknown option ${JSON.stringify(key)}`);
  }
}

function clean<T extends Record<string, unknown>>(values: T): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined && v !== null)) as Partial<T>;
}

/** A memory's expiry as the body carries it: expires_at (null clears it on an update), ttl_seconds, or
 * mem0's expiration_date, an inclusive YYYY-MM-DD date (the memory leaves at the next midnight UTC). */
function expiryBody(options: { expires_at?: Date | string | null; ttl_seconds?: number;
  expiration_date?: string | null }): Record<string, unknown> {
  if (options.expires_at !== undefined && options.expiration_date !== undefined) {
    throw invalid("give expires_at or expiration_date (mem0's name), not both", "expiration_date");
  }
  let expiresAt: unknown = options.expires_at instanceof Date ? options.expires_at.toISOString() : options.expires_at;
  const day = options.expiration_date;
  if (typeof day === "string" && /^\d{4}-\d{2}-\d{2}$/.test(day)) {
    const next = new Date(`${day}T00:00:00Z`);
    if (Number.isNaN(next.getTime())) throw invalid("expiration_date: a YYYY-MM-DD date", "expiration_date");
    next.setUTCDate(next.getUTCDate() + 1);
    expiresAt = next.toISOString();
  } else if (day !== undefined) {
    expiresAt = day;
  }
  const body: Record<string, unknown> = {};
  if (expiresAt !== undefined) body.expires_at = expiresAt;
  if (options.ttl_seconds !== undefined) body.ttl_seconds = options.ttl_seconds;
  return body;
}

function invalid(message: string, field: string): InvalidRequest {
  return new InvalidRequest(message, { code: "invalid_request", details: { field } });
}

/** A Date, ISO string or Unix seconds as ISO 8601. */
function iso(value: When | null | undefined, field: string): string | undefined {
  if (value === undefined || value === null || typeof value === "string") return value ?? undefined;
  if (typeof value === "number" && Number.isFinite(value)) return new Date(value * 1000).toISOString();
  if (value instanceof Date && !Number.isNaN(value.getTime())) return value.toISOString();
  throw invalid(`${field}: a Date, an ISO 8601 string or Unix seconds`, field);
}

/** /v1/memories/<uuid><suffix>: the id checked as a UUID and encoded as one path segment. */
function memoryPath(memoryId: unknown, suffix = ""): string {
  return `/v1/memories/${encodeURIComponent(uuidArg(memoryId, "memory_id"))}${suffix}`;
}

function scopeIds(options: Scope): Record<string, string | undefined> {
  return { agent_id: optionalId(options.agent_id, "agent_id"), run_id: optionalId(options.run_id, "run_id"),
    app_id: optionalId(options.app_id, "app_id") };
}

/** mem0's v2 calls name the user inside filters ({user_id} or an AND member); the API takes it as a field. */
function liftUser(filters: Filters | undefined, userId: string | null | undefined): [Filters | undefined, string | null | undefined] {
  if (filters === undefined || filters === null || Object.keys(filters).length === 0) return [filters ?? undefined, userId];
  if (!isObject(filters)) throw invalid("filters: a JSON object (mem0's v2 filter shape)", "filters");
  const rest: Filters = { ...filters };
  const found: string[] = [];
  if (typeof rest.user_id === "string") {
    found.push(rest.user_id);
    delete rest.user_id;
  }
  if (Array.isArray(rest.AND)) {
    const kept = rest.AND.filter((item) => {
      const named = isObject(item) && Object.keys(item).length === 1 && typeof item.user_id === "string";
      if (named) found.push(item.user_id as string);
      return !named;
    });
    if (kept.length) rest.AND = kept;
    else delete rest.AND;
  }
  for (const named of found) {
    if (userId !== undefined && userId !== null && named !== userId) {
      throw invalid(`filters: user_id ${JSON.stringify(named)} differs from user_id ${JSON.stringify(userId)}`, "filters.user_id");
    }
    userId = named;
  }
  return [Object.keys(rest).length ? rest : undefined, userId];
}

function uuid4(): string {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const bytes = c.getRandomValues(new Uint8Array(16)); // randomUUID is missing outside secure contexts
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** An environment variable in Node (or Deno/Bun's process shim); undefined in a browser. */
function env(name: string): string | undefined {
  const process = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return process?.env?.[name] || undefined;
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

export class RecallstackClient {
  readonly baseUrl: string;
  apiKey: string | null;
  userId: string | null;
  readonly timeoutMs: number;
  retry: RetryPolicy;
  consistency: Consistency;
  /** Consistency tokens per user, shared with the clients `withOptions` makes. */
  tokens: TokenStore;
  private headers: Record<string, string>;
  private fetcher: typeof fetch;

  constructor(options: ClientOptions = {}) {
    const consistency = options.consistency ?? "read_your_writes";
    if (consistency !== "read_your_writes" && consistency !== "eventual") {
      throw new RangeError("consistency: 'read_your_writes' or 'eventual'");
    }
    const base = options.baseUrl ?? options.host ?? env("RECALLSTACK_URL") ?? DEFAULT_URL;
    if (base !== "" && !/^https?:\/\/[^/?#\s]+(\/[^?#\s]*)?$/i.test(base)) {
      throw invalid(`baseUrl: an http(s) URL such as ${DEFAULT_URL}, got ${JSON.stringify(base)}`, "baseUrl");
    }
    this.baseUrl = base.replace(/\/+$/, "");
    this.apiKey = options.apiKey !== undefined ? options.apiKey : env("RECALLSTACK_API_KEY") ?? null;
    this.userId = options.userId ?? null;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.retry = options.retry instanceof RetryPolicy ? options.retry : new RetryPolicy(options.retry);
    this.consistency = consistency;
    this.tokens = new TokenStore();
    // Browsers do not let a page set User-Agent; elsewhere it names the SDK in the server's logs.
    const agent: Record<string, string> = typeof document === "undefined" ? { "User-Agent": `recallstack-js/${VERSION}` } : {};
    this.headers = { ...agent, Accept: "application/json", ...(options.headers ?? {}) };
    const given = options.fetch ?? globalThis.fetch;
    if (typeof given !== "function") throw new TypeError("no fetch: Node >= 20 or a browser, or pass options.fetch");
    this.fetcher = (input, init) => given(input, init); // unbound: window.fetch refuses another `this`
  }

  /** A client sharing this one's consistency tokens, with other defaults (e.g. another API key). */
  withOptions(options: { apiKey?: string | null; userId?: string | null; retry?: RetryPolicy | RetryOptions; consistency?: Consistency }): RecallstackClient {
    const clone = Object.create(Object.getPrototypeOf(this)) as RecallstackClient;
    Object.assign(clone, this);
    if (options.apiKey !== undefined) clone.apiKey = options.apiKey;
    if (options.userId !== undefined) clone.userId = options.userId;
    if (options.retry !== undefined) clone.retry = options.retry instanceof RetryPolicy ? options.retry : new RetryPolicy(options.retry);
    if (options.consistency !== undefined) clone.consistency = options.consistency;
    return clone;
  }

  /** The consistency token this client passes on the user's next read (the key's own user: no argument). */
  latestToken(userId?: string | null): string | undefined {
    return this.tokens.get(this.tokenOwner(userId ?? this.userId));
  }

  // ---- mem0's methods ------------------------------------------------------------------------------

  /** Store a memory (a text) or the memories in a conversation (a message or a list of {role, content}).
   * A string is stored as given (with infer: true it is sent as a user message to extract facts from);
   * messages are stored one memory per message, or queued for extraction with infer: true. A retried
   * add is applied once (the Idempotency-Key, a fresh UUID unless given, is the same on every try). */
  async add(messages: string | Message | Message[], options: AddOptions = {}): Promise<WriteResult> {
    refuseUnknown("add", options);
    const userId = this.user(options.user_id);
    if (options.occurred_at !== undefined && options.timestamp !== undefined) {
      throw invalid("give occurred_at or timestamp, not both", "timestamp");
    }
    const body: Record<string, unknown> = { user_id: userId };
    if (typeof messages === "string") {
      if (options.infer) body.messages = [{ role: "user", content: messages }];
      else body.text = messages;
    } else if (Array.isArray(messages) && messages.every(isObject)) {
      body.messages = [...messages];
    } else if (isObject(messages)) {
      body.messages = [messages];
    } else {
      throw invalid("messages: a string, a message {role, content}, or a list of messages", "messages");
    }
    Object.assign(body, clean({ ...scopeIds(options), metadata: options.metadata, categories: options.categories,
      importance: options.importance, infer: options.infer,
      occurred_at: iso(options.occurred_at ?? options.timestamp, options.timestamp !== undefined ? "timestamp" : "occurred_at") }));
    Object.assign(body, clean(expiryBody(options)));
    return this.send({ method: "POST", path: "/v1/memories", body: clean(body), user_id: userId, write: true,
      idempotency_key: options.idempotency_key });
  }

  /** Hybrid search (dense, keyword, time and graph, fused) over the user's memories, best first.
   * Sees this client's own earlier writes of the user (unless consistency is "eventual"). */
  async search(query: string, options: SearchOptions = {}): Promise<SearchResult> {
    refuseUnknown("search", options);
    const { filters: given, limit, top_k: topK, user_id: _u, agent_id: _a, run_id: _r, app_id: _p,
      consistency_token: token, reference_time: when, as_of: asOf, ...rest } = options;
    if (limit !== undefined && topK !== undefined && limit !== topK) throw invalid("give limit or top_k (the same thing), not both", "top_k");
    const [filters, named] = liftUser(given, options.user_id);
    const userId = this.user(named);
    const body = clean({ query, user_id: userId, ...scopeIds(options), filters, limit: limit ?? topK,
      reference_time: iso(when, "reference_time"), as_of: asOf === undefined ? undefined : iso(asOf, "as_of"), ...rest });
    return this.send({ method: "POST", path: "/v1/memories/search", body, user_id: userId, token_in: "body", consistency_token: token });
  }

  /** One memory by id; NotFound when it is absent, deleted or another user's. */
  async get(memoryId: string, options: ReadOptions = {}): Promise<Memory> {
    const userId = this.user(options.user_id);
    const query = { user_id: userId, as_of: options.as_of === undefined ? undefined : iso(options.as_of, "as_of") };
    return this.send({ method: "GET", path: memoryPath(memoryId), query, user_id: userId,
      token_in: "query", consistency_token: options.consistency_token });
  }

  /** The user's memories, newest first, a page at a time: {results, page, page_size, total, has_more}. */
  async getAll(options: GetAllOptions = {}): Promise<MemoryPage> {
    refuseUnknown("getAll", options);
    const [filters, named] = liftUser(options.filters, options.user_id);
    const userId = this.user(named);
    const query = { user_id: userId, ...scopeIds(options), filters: filters ? JSON.stringify(filters) : undefined,
      page: options.page ?? 1, page_size: options.limit ?? options.top_k ?? options.page_size ?? 100,
      sort: options.sort, order: options.order, include_archived: options.include_archived, state: options.state,
      include_expired: options.include_expired };
    if (options.as_of !== undefined) Object.assign(query, { as_of: iso(options.as_of, "as_of") });
    return this.send({ method: "GET", path: "/v1/memories", query, user_id: userId, token_in: "query",
      consistency_token: options.consistency_token });
  }

  /** Change a memory's text (re-embedded) and/or replace its metadata, categories or importance; what is
   * not given stays. `update(id, "new text", {...})` or `update(id, {text, metadata, ...})`. */
  async update(memoryId: string, text: string | UpdateOptions, options: UpdateOptions = {}): Promise<WriteResult> {
    const merged: UpdateOptions = typeof text === "string" ? { ...options, text } : { ...text, ...options };
    refuseUnknown("update", merged);
    if (merged.text !== undefined && merged.data !== undefined && merged.text !== merged.data) {
      throw invalid("give text or data (the same thing), not both", "data");
    }
    const path = memoryPath(memoryId);
    const userId = this.user(merged.user_id);
    const body = { ...clean({ text: merged.text ?? merged.data, metadata: merged.metadata,
      categories: merged.categories, importance: merged.importance }), ...expiryBody(merged) };  // null clears
    return this.send({ method: "PATCH", path, query: { user_id: userId }, body, user_id: userId, write: true,
      token_in: "header", idempotency_key: merged.idempotency_key });
  }

  /** Delete one memory (its history stays in the log); NotFound when it is not the user's. */
  async delete(memoryId: string, options: MemoryOptions = {}): Promise<WriteResult> {
    const path = memoryPath(memoryId);
    const userId = this.user(options.user_id);
    return this.send({ method: "DELETE", path, query: { user_id: userId }, user_id: userId, write: true,
      token_in: "header", idempotency_key: options.idempotency_key });
  }

  /** Make a forgotten (or archived) memory active again; Conflict (409) when it is active. */
  async restore(memoryId: string, options: MemoryOptions = {}): Promise<WriteResult> {
    const path = memoryPath(memoryId, "/restore");
    const userId = this.user(options.user_id);
    return this.send({ method: "POST", path, query: { user_id: userId }, user_id: userId, write: true,
      token_in: "header", idempotency_key: options.idempotency_key });
  }

  /** Delete every memory of a scope: the user's, narrowed by agent_id / run_id / app_id. */
  async deleteAll(options: DeleteAllOptions = {}): Promise<WriteResult> {
    refuseUnknown("deleteAll", options);
    const userId = this.user(options.user_id);
    return this.send({ method: "DELETE", path: "/v1/memories", query: { user_id: userId, ...scopeIds(options) },
      user_id: userId, write: true, idempotency_key: options.idempotency_key });
  }

  /** Every change of one memory, oldest first, read from the log. */
  async history(memoryId: string, options: ReadOptions = {}): Promise<HistoryEntry[]> {
    const path = memoryPath(memoryId, "/history");
    const userId = this.user(options.user_id);
    const answer = await this.send<{ history?: HistoryEntry[] }>({ method: "GET", path, query: { user_id: userId },
      user_id: userId, token_in: "query", consistency_token: options.consistency_token });
    return answer.history ?? [];
  }

  /** A ready-to-inject block of the memories most relevant to `query` that fits max_tokens (default 1000). */
  async getContext(query: string, options: ContextOptions = {}): Promise<Context> {
    const [filters, named] = liftUser(options.filters, options.user_id);
    const userId = this.user(named);
    const body = clean({ query, user_id: userId, max_tokens: options.max_tokens ?? 1000, ...scopeIds(options), filters,
      encoding: options.encoding, candidates: options.candidates, reference_time: iso(options.reference_time, "reference_time"),
      include_shared: options.include_shared, as_of: options.as_of === undefined ? undefined : iso(options.as_of, "as_of"),
      rerank: options.rerank });
    return this.send({ method: "POST", path: "/v1/context", body, user_id: userId, token_in: "body",
      consistency_token: options.consistency_token });
  }

  // ---- more of the API ------------------------------------------------------------------------------

  /** Who the API key is: {user_id, scopes, key_prefix, ...}. */
  async me(): Promise<Me> {
    return this.send({ method: "GET", path: "/v1/me" });
  }

  /** The user's entities and relations (the graph read model). */
  async graph(options: GraphOptions = {}): Promise<Graph> {
    const userId = this.user(options.user_id);
    return this.send({ method: "GET", path: "/v1/graph", query: { user_id: userId, include_closed: options.include_closed,
      limit: options.limit }, user_id: userId, token_in: "query", consistency_token: options.consistency_token });
  }

  /** The user's profile: preferences, facts, projects, tools, people and instructions drawn from their memories, each
   * item with the memory ids it came from; NotFound for a user without memories. Needs the user id (the path names it). */
  async getProfile(userId?: string | null, options: Read = {}): Promise<Profile> {
    const named = this.user(userId);
    if (named === null) throw invalid("getProfile needs the user id (the path names it)", "user_id");
    return this.send({ method: "GET", path: `/v1/users/${encodeURIComponent(named)}/profile`, user_id: named,
      token_in: "query", consistency_token: options.consistency_token });
  }

  /** Core memory blocks: read, list, set, append, replace, delete, history (src/core-memory.ts). */
  get coreMemory(): CoreMemory {
    return new CoreMemory(this, () => this.userId);
  }

  /** The user's memories counted per app and per agent. */
  async namespaces(options: { user_id?: string | null } = {}): Promise<Namespaces> {
    const userId = this.user(options.user_id);
    return this.send({ method: "GET", path: "/v1/namespaces", query: { user_id: userId } });
  }

  /** Up to 1,000 add bodies in one call, all or nothing (each names its user_id, or the key's user). */
  /** Up to 1,000 memories, all or nothing. The batch is taken as turns of a conversation: each memory carries up to
   * `context_turns` (default 2; 0: none, e.g. an import) memories before it as context, which search matches. */
  async addBatch(memories: Record<string, unknown>[], options: Written & { context_turns?: number } = {}
  ): Promise<WriteResult> {
    const users = new Set(memories.map((m) => (typeof m.user_id === "string" ? m.user_id : null)));
    const owner = users.size === 1 ? [...users][0] : undefined; // one user: its reads then see the batch
    const body = options.context_turns === undefined ? { memories } : { memories, context_turns: options.context_turns };
    return this.send({ method: "POST", path: "/v1/memories/batch", body, user_id: owner, write: true,
      idempotency_key: options.idempotency_key });
  }

  /** Any endpoint of the API, with this client's retries, keys, consistency tokens and typed errors. */
  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    if (!path.startsWith("/")) throw invalid(`path: an absolute path of the API such as /v1/me, got ${JSON.stringify(path)}`, "path");
    return this.send({ ...options, method: method.toUpperCase(), path });
  }

  // ---- the machinery -------------------------------------------------------------------------------

  /** The user a call names; null (the API key's own user, filled in by the server) when neither the call
   * nor the client names one and an API key is set. */
  private user(userId: string | null | undefined): string | null {
    const named = userId ?? this.userId;
    if (!named) {
      if (this.apiKey) return null;
      throw invalid("user_id is required (pass user_id, new RecallstackClient({userId}) as a default, or an apiKey "
        + "whose user is meant)", "user_id");
    }
    return idArg(named, "user_id");
  }

  /** Whose consistency token a call uses: the named user, or the key's own user (keyed by the key). */
  private tokenOwner(userId: string | null | undefined): string | undefined {
    if (userId) return `user:${userId}`;
    return this.apiKey ? `key:${this.apiKey}` : undefined;
  }

  private prepare(call: Call): { url: string; init: RequestInit; requestId: string; owner: string | undefined } {
    const headers: Record<string, string> = { ...this.headers, ...(call.headers ?? {}) };
    const named = Object.keys(headers).find((name) => name.toLowerCase() === "x-request-id");
    const requestId = named ? headers[named] : uuid4().replace(/-/g, "");
    if (!named) headers["X-Request-ID"] = requestId;
    if (this.apiKey) headers.Authorization = `Bearer ${this.apiKey}`;
    const write = call.write ?? !["GET", "HEAD"].includes(call.method);
    if (write && !Object.keys(headers).some((name) => name.toLowerCase() === "idempotency-key")) {
      headers["Idempotency-Key"] = call.idempotency_key ?? uuid4();
    }
    const owner = this.tokenOwner(call.user_id === undefined ? this.userId : call.user_id);
    let token = call.consistency_token;
    const remembered = this.consistency === "read_your_writes" && call.token_in ? this.tokens.get(owner) : undefined;
    if (remembered) token = token ? mergeTokens(remembered, token) : remembered;
    const query: Record<string, Scalar> = { ...(call.query ?? {}) };
    let body = call.body;
    if (token && call.token_in === "body" && isObject(body)) body = { ...body, consistency_token: token };
    else if (token && call.token_in === "query") query.consistency_token = token;
    else if (token && call.token_in === "header") headers["X-Consistency-Token"] = token;
    for (const [name, value] of Object.entries(headers)) {
      if (/[\r\n\0]/.test(value)) throw invalid(`header ${name}: a value without line breaks`, name);
    }
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
    }
    const search = params.toString();
    const init: RequestInit = { method: call.method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return { url: `${this.baseUrl}${call.path}${search ? `?${search}` : ""}`, init, requestId, owner };
  }

  /** One try, its whole answer read within the timeout. */
  private async attempt(url: string, init: RequestInit): Promise<Answer> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error(`timed out after ${this.timeoutMs} ms`)), this.timeoutMs);
    try {
      const response = await this.fetcher(url, { ...init, signal: controller.signal });
      const text = await response.text();
      let body: unknown = null;
      try {
        body = text ? JSON.parse(text) : {};
      } catch {
        body = null;
      }
      return { status: response.status, ok: response.ok, headers: response.headers, text, body };
    } finally {
      clearTimeout(timer);
    }
  }

  private async send<T>(call: Call): Promise<T> {
    const { url, init, requestId, owner } = this.prepare(call);
    const state = this.retry.start();
    let answer: Answer | null = null;
    let failure: unknown = null;
    for (;;) {
      let outcome: Outcome;
      try {
        answer = await this.attempt(url, init);
        failure = null;
        const error = isObject(answer.body) && isObject(answer.body.error) ? answer.body.error.code : null;
        outcome = { kind: "response", status: answer.status, retryAfter: answer.headers.get("retry-after"),
          errorCode: typeof error === "string" ? error : null };
      } catch (error) {
        answer = null;
        failure = error;
        outcome = { kind: "transport", error };
      }
      const delay = state.nextDelayMs(outcome);
      if (delay === null) break;
      await sleep(delay);
    }
    return this.finish<T>(call, state, answer, failure, requestId, owner);
  }

  private finish<T>(call: Call, state: RetryState, answer: Answer | null, failure: unknown, requestId: string,
                    owner: string | undefined): T {
    const url = `${this.baseUrl}${call.path}`;
    const where = { attempts: state.attempts, method: call.method, url };
    if (answer === null) {
      const why = state.gaveUp ? `; ${state.gaveUp}` : "";
      const reason = failure instanceof Error ? `${failure.name}: ${failure.message}` + (failure.cause instanceof Error
        ? ` (${failure.cause.message})` : "") : String(failure);
      throw new Unavailable(`could not reach recallstack at ${this.baseUrl || "this origin"}: ${reason}${why}`,
        { ...where, requestId, cause: failure });
    }
    if (answer.ok) {
      if (!isObject(answer.body)) {
        throw errorFor(answer.status, null, { ...where, requestId, text: `not a JSON object: ${answer.text.slice(0, 200)}` });
      }
      if ((call.write ?? call.method !== "GET") && owner) this.tokens.remember(owner, answer.body.consistency_token);
      return answer.body as T;
    }
    const error = errorFor(answer.status, answer.body, { ...where, text: answer.text,
      retryAfter: retryAfterSeconds(answer.headers.get("retry-after")),
      requestId: answer.headers.get("x-request-id") ?? requestId });
    if (state.gaveUp) error.message = `${error.message} (${state.gaveUp})`;
    throw error;
  }
}

/** mem0's name, so switching is a change of import. */
export const MemoryClient = RecallstackClient;
export type MemoryClient = RecallstackClient;
