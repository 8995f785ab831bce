// The REST API through the gateway (same origin), by the TypeScript SDK (sdk/typescript, @recallstack/sdk): the
// key as a Bearer token, the acting user as user_id, writes retried safely (an Idempotency-Key that stays
// the same across retries), reads that see this tab's own writes (consistency tokens), and failures as the
// SDK's typed errors carrying the API's own code and message. Only the UI's view of a few answers and
// the UI's own endpoint (/ui/api/system) are defined here.
import {
  AuthenticationError, RecallstackClient,
  type GetAllOptions, type HistoryEntry, type Memory, type SearchOptions, type UpdateOptions, type WriteResult,
} from "@recallstack/sdk";

export type { Graph, HistoryEntry, Me, Memory, Namespaces, SearchHit } from "@recallstack/sdk";
export type { Block as CoreBlock } from "@recallstack/sdk";
export type { Profile } from "@recallstack/sdk";
export type { SearchResult as SearchAnswer } from "@recallstack/sdk";
export { RecallstackError as ApiError } from "@recallstack/sdk";

export type Page<T> = { results: T[]; page: number; page_size: number; total: number; has_more: boolean };
export type Written = WriteResult;

type Query = Record<string, string | number | boolean | null | undefined>;

// The browser tab waits at most about this long for an API that is restarting (429, 502-504).
const RETRY = { maxAttempts: 3, totalTimeoutMs: 20_000 };

export class Api {
  private client: RecallstackClient;

  constructor(key: string, public userId: string | null, private onUnauthorized: (message: string) => void) {
    this.client = new RecallstackClient({ baseUrl: "", apiKey: key, userId, retry: RETRY });
  }

  /** A call of the SDK; a refused key (401) signs the tab out. */
  private async call<T>(work: (client: RecallstackClient) => Promise<T>): Promise<T> {
    try {
      return await work(this.client);
    } catch (exc) {
      if (exc instanceof AuthenticationError && exc.status === 401) this.onUnauthorized(exc.message);
      throw exc;
    }
  }

  me() {
    return this.call((c) => c.me());
  }
  users(page = 1) {
    return this.call((c) => c.request<Page<{ user_id: string; display_name: string | null }>>("GET", "/v1/users",
      { query: { page, page_size: 1000 } }));
  }
  /** GET /v1/memories: the page's scope, state, sort and paging; `filters` a filter tree as JSON. */
  list(query: Query) {
    const options: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") options[name] = name === "filters" ? JSON.parse(String(value)) : value;
    }
    return this.call((c) => c.getAll(options as GetAllOptions)) as Promise<Page<Memory>>;
  }
  get(id: string) {
    return this.call((c) => c.get(id));
  }
  async history(id: string): Promise<{ history: HistoryEntry[] }> {
    return { history: await this.call((c) => c.history(id)) };
  }
  search({ query, ...options }: { query: string } & SearchOptions) {
    return this.call((c) => c.search(query, options));
  }
  update(id: string, body: UpdateOptions) {
    return this.call((c) => c.update(id, body));
  }
  remove(id: string) {
    return this.call((c) => c.delete(id));
  }
  graph(includeClosed: boolean) {
    return this.call((c) => c.graph({ include_closed: includeClosed }));
  }
  namespaces() {
    return this.call((c) => c.namespaces());
  }
  /** GET /v1/users/{id}/profile: the acting user's profile (NotFound: no memories yet). */
  profile() {
    return this.call((c) => c.getProfile(this.userId));
  }
  /** Core memory blocks (the SDK's coreMemory): the acting user's, user-wide (agent null) or one agent's. */
  coreBlocks(agentId: string | null) {
    return this.call((c) => c.coreMemory.list({ agent_id: agentId }));
  }
  coreSet(label: string, value: string, agentId: string | null, limitTokens?: number) {
    return this.call((c) => c.coreMemory.set(label, value, { agent_id: agentId, limit_tokens: limitTokens }));
  }
  coreAppend(label: string, content: string, agentId: string | null) {
    return this.call((c) => c.coreMemory.append(label, content, { agent_id: agentId }));
  }
  coreDelete(label: string, agentId: string | null) {
    return this.call((c) => c.coreMemory.delete(label, { agent_id: agentId }));
  }
  embedder() {
    return this.call((c) => c.request<{ embedding_model?: string; model?: string; dim?: number }>("GET", "/v1/embedder"));
  }
  addBatch(memories: Record<string, unknown>[], idempotencyKey: string) {
    // An import: the file's memories are not turns of one conversation, so no context is derived.
    return this.call((c) => c.addBatch(memories, { idempotency_key: idempotencyKey, context_turns: 0 }));
  }
  system() {
    return this.call((c) => c.request<SystemSnapshot>("GET", "/ui/api/system"));
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
