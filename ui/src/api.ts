// The REST API through the gateway (same origin): the key as a Bearer token, the acting
// user as user_id, errors as ApiError with the API's own code and message.

export type Me = { user_id: string; scopes: string[]; key_prefix: string; key_id: string; auth: string };

export type Memory = {
  id: string;
  memory: string;
  user_id: string;
  agent_id: string | null;
  run_id: string | null;
  app_id: string | null;
  metadata: Record<string, unknown>;
  categories: string[];
  importance: number;
  state: string;
  created_at: string;
  updated_at: string;
  occurred_at: string;
  version: number;
  access_count?: number;
  last_accessed_at?: string | null;
};

export type Page<T> = { results: T[]; page: number; page_size: number; total: number; has_more: boolean };
export type SearchHit = Memory & { score: number; similarity?: number; ranks: Record<string, number> };
export type SearchAnswer = { results: SearchHit[]; degraded: { source: string; reason: string }[]; cache?: string };
export type HistoryEntry = {
  event_id: string;
  event: string;
  actor: string;
  correlation_id: string | null;
  at: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  reason: string | null;
};
export type Graph = {
  user_id: string;
  entities: { name: string; type: string; mentions: number; aliases?: string[] }[];
  relations: { source: string; target: string; type: string; memory_id: string; valid_from: string; valid_to: string | null }[];
  co_mentions: { source: string; source_type: string; target: string; target_type: string; weight: number }[];
};
export type Namespaces = {
  user_id: string;
  memories: number;
  apps: { app_id: string; memories: number }[];
  agents: { agent_id: string; memories: number }[];
};
export type Written = { consistency_token?: string; [key: string]: unknown };

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

type Query = Record<string, string | number | boolean | null | undefined>;

const RETRIED = new Set([429, 502, 503, 504]);
const ATTEMPTS = 3;

function newKey(): string {
  if (typeof crypto !== "undefined" && "randomUUID" in crypto) return `ui-${crypto.randomUUID()}`;
  return `ui-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
}

export class Api {
  // The newest consistency token of this tab's writes: reads wait until it is applied, so an
  // edit shows in the next page at once (read-your-writes; the API's consistency_token).
  token: string | undefined;

  constructor(private key: string, public userId: string | null, private onUnauthorized: (message: string) => void) {}

  async request<T>(method: string, path: string, options: { query?: Query; body?: unknown; headers?: Record<string, string>; user?: boolean } = {}): Promise<T> {
    const query: Query = { ...(options.query ?? {}) };
    if (options.user !== false && this.userId) query.user_id = this.userId;
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
    }
    const url = path + (params.size ? `?${params}` : "");
    const headers: Record<string, string> = { Authorization: `Bearer ${this.key}`, ...(options.headers ?? {}) };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    // Writes carry an Idempotency-Key, so a write the API refused for a moment (429, 502-504:
    // Kafka or an API restarting) is retried safely, like the SDK does.
    if (method !== "GET" && !headers["Idempotency-Key"]) headers["Idempotency-Key"] = newKey();
    let answer: Response | null = null;
    for (let attempt = 1; ; attempt++) {
      try {
        answer = await fetch(url, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
        if (!RETRIED.has(answer.status) || attempt >= ATTEMPTS) break;
      } catch (exc) {
        if (attempt >= ATTEMPTS) throw new ApiError(0, "unreachable", `the gateway did not answer: ${(exc as Error).message}`);
      }
      const after = Number(answer?.headers.get("Retry-After") ?? "1");
      await new Promise((done) => setTimeout(done, Math.min(Number.isFinite(after) ? after : 1, 5) * 1000 * attempt));
    }
    const text = await answer.text();
    let body: any = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!answer.ok) {
      const error = body?.error ?? {};
      const message = error.message ?? `HTTP ${answer.status}: ${text.slice(0, 200)}`;
      if (answer.status === 401) this.onUnauthorized(message);
      throw new ApiError(answer.status, error.code ?? "http_error", message);
    }
    if (body && typeof body.consistency_token === "string") this.token = body.consistency_token;
    return body as T;
  }

  private consistent(): Query {
    return { consistency_token: this.token };
  }

  me() {
    return this.request<Me>("GET", "/v1/me", { user: false });
  }
  users(page = 1) {
    return this.request<Page<{ user_id: string; display_name: string | null }>>("GET", "/v1/users", { user: false, query: { page, page_size: 1000 } });
  }
  list(query: Query) {
    return this.request<Page<Memory>>("GET", "/v1/memories", { query: { ...this.consistent(), ...query } });
  }
  get(id: string) {
    return this.request<Memory>("GET", `/v1/memories/${id}`, { query: this.consistent() });
  }
  history(id: string) {
    return this.request<{ history: HistoryEntry[] }>("GET", `/v1/memories/${id}/history`, { query: this.consistent() });
  }
  search(body: Record<string, unknown>) {
    const withUser = this.userId ? { user_id: this.userId, ...body } : body;
    return this.request<SearchAnswer>("POST", "/v1/memories/search", { body: { ...withUser, consistency_token: this.token }, user: false });
  }
  update(id: string, body: Record<string, unknown>) {
    return this.request<Written>("PATCH", `/v1/memories/${id}`, { body });
  }
  remove(id: string) {
    return this.request<Written>("DELETE", `/v1/memories/${id}`);
  }
  graph(includeClosed: boolean) {
    return this.request<Graph>("GET", "/v1/graph", { query: { include_closed: includeClosed } });
  }
  namespaces() {
    return this.request<Namespaces>("GET", "/v1/namespaces");
  }
  embedder() {
    return this.request<{ embedding_model?: string; model?: string; dim?: number }>("GET", "/v1/embedder", { user: false });
  }
  addBatch(memories: Record<string, unknown>[], idempotencyKey: string) {
    return this.request<Written>("POST", "/v1/memories/batch", { body: { memories }, user: false, headers: { "Idempotency-Key": idempotencyKey } });
  }
  system() {
    return this.request<SystemSnapshot>("GET", "/ui/api/system", { user: false });
  }
}

export type SystemSnapshot = {
  health: { status: string; checks: Record<string, string>; degraded: { service: string; dependency?: string }[] };
  interval_s: number;
  samples: {
    at: number;
    requests_per_s: number | null;
    errors_5xx_per_s: number | null;
    latency_ms: number | null;
    applied_per_s: number | null;
    lag: number | null;
  }[];
  lag: Record<string, number | null>;
  errors: Record<string, string>;
};
