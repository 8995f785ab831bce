// Errors of the recallstack SDK. Every failure is a RecallstackError carrying what the server said:
// the HTTP `status` (null when no answer came), the `code`, `message` and `details` of the API's
// `{error: {code, message, details}}` body, the Retry-After it asked for and how many `attempts` the
// client made. Subclasses let callers catch a kind (`instanceof`), as in the Python SDK:
//   InvalidRequest       400, 413, 422, or arguments the client refuses before sending
//   AuthenticationError  401, 403
//   NotFound             404: absent, deleted, or another user's memory
//   Conflict             409 that retries did not resolve
//   Unavailable          502/503/504, or the server could not be reached, after the retry budget
//   RateLimited          429 after the retry budget (an Unavailable)

export type ErrorDetails = Record<string, unknown>;

export interface ErrorInit {
  status?: number | null;
  code?: string | null;
  details?: ErrorDetails | null;
  retryAfter?: number | null;
  attempts?: number;
  method?: string | null;
  url?: string | null;
  requestId?: string | null;
  cause?: unknown;
}

export class RecallstackError extends Error {
  /** The HTTP status; null when no answer came. */
  readonly status: number | null;
  /** The API's error code (e.g. "invalid_request", "not_found"). */
  readonly code: string | null;
  /** The API's details: `field` names the argument at fault. */
  readonly details: ErrorDetails;
  /** Seconds the server asked to wait (Retry-After). */
  readonly retryAfter: number | null;
  readonly attempts: number;
  readonly method: string | null;
  readonly url: string | null;
  /** The X-Request-ID of the call: the server's log lines carry it. */
  readonly requestId: string | null;

  constructor(message: string, init: ErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.status = init.status ?? null;
    this.code = init.code ?? null;
    this.details = init.details ?? {};
    this.retryAfter = init.retryAfter ?? null;
    this.attempts = init.attempts ?? 1;
    this.method = init.method ?? null;
    this.url = init.url ?? null;
    this.requestId = init.requestId ?? null;
  }

  /** The message with status, code, call and request id, as the Python SDK's str(). */
  describe(): string {
    const head = [this.status, this.code].filter((p) => p !== null).join(" ");
    let where = "";
    if (this.method) {
      where = ` (${this.method} ${this.url}` + (this.attempts > 1 ? `, ${this.attempts} attempts` : "")
        + (this.requestId ? `, request ${this.requestId}` : "") + ")";
    }
    return head ? `${head}: ${this.message}${where}` : `${this.message}${where}`;
  }
}

/** The request was refused as malformed (400/413/422); `details.field` names the field. */
export class InvalidRequest extends RecallstackError {}
/** The API key is missing, unknown or not allowed (401/403). */
export class AuthenticationError extends RecallstackError {}
/** No such memory for this user (404): absent, deleted, or someone else's. */
export class NotFound extends RecallstackError {}
/** 409: e.g. the same Idempotency-Key still in progress after every retry, or restoring an active memory. */
export class Conflict extends RecallstackError {}
/** The service (or a dependency: Kafka, Postgres, ...) could not answer within the retry budget. */
export class Unavailable extends RecallstackError {}
/** 429 after the retry budget. */
export class RateLimited extends Unavailable {}

function kindFor(status: number | null): typeof RecallstackError {
  if (status === 400 || status === 413 || status === 422) return InvalidRequest;
  if (status === 401 || status === 403) return AuthenticationError;
  if (status === 404) return NotFound;
  if (status === 409) return Conflict;
  if (status === 429) return RateLimited;
  if (status === null || status === 502 || status === 503 || status === 504) return Unavailable;
  return RecallstackError;
}

/** The error for an answer: the API's `{error: {...}}` body when there is one. */
export function errorFor(status: number | null, body: unknown, init: ErrorInit & { text?: string } = {}): RecallstackError {
  let code: string | null = null;
  let message: string | null = null;
  let details: ErrorDetails = {};
  const object = isObject(body) ? body : null;
  const error = object && isObject(object.error) ? object.error : null;
  if (error) {
    code = typeof error.code === "string" ? error.code : null;
    message = typeof error.message === "string" ? error.message : null;
    const given = error.details;
    details = isObject(given) ? given : given === undefined || given === null ? {} : { details: given };
  } else if (object && "detail" in object) { // a plain FastAPI error
    message = typeof object.detail === "string" ? object.detail : JSON.stringify(object.detail);
  }
  if (!message) message = (init.text ?? "").trim().slice(0, 500) || `HTTP ${status}`;
  const Kind = kindFor(status);
  return new Kind(message, { ...init, status, code, details });
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
