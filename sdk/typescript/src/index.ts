// @recallstack/sdk: the TypeScript/JavaScript client of recallstack (Node >= 20 and browsers).
//
//   import { RecallstackClient } from "@recallstack/sdk";
//   const client = new RecallstackClient({ baseUrl: "http://127.0.0.1:8080", apiKey: "rsk_..." });
//   await client.add("Alice prefers dark mode", { user_id: "alice" });
//   const hits = await client.search("which theme does alice like?", { user_id: "alice" }); // sees the add

export {
  DEFAULT_URL, MemoryClient, RecallstackClient, VERSION,
  type AddOptions, type ClientOptions, type Consistency, type ContextOptions, type DeleteAllOptions, type GetAllOptions,
  type GraphOptions, type MemoryOptions, type ReadOptions, type RequestOptions, type SearchOptions, type UpdateOptions,
  type When,
} from "./client.js";
export { TokenStore, mergeTokens } from "./consistency.js";
export { CoreMemory, LABEL_RE, type Block, type BlockChange, type BlockRead, type BlockScope, type BlockSet, type BlockWrite } from "./core-memory.js";
export {
  AuthenticationError, Conflict, InvalidRequest, NotFound, RateLimited, RecallstackError, Unavailable, errorFor,
  type ErrorDetails,
} from "./errors.js";
export { ID_RE, UUID_RE, idArg, uuidArg } from "./ids.js";
export { RETRY_STATUSES, RetryPolicy, RetryState, retryAfterSeconds, retryable, type Outcome, type RetryOptions } from "./retry.js";
export type * from "./types.js";
