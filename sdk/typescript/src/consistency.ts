// The latest consistency token of each user this client wrote for (read-your-writes), as the Python
// SDK's recallstack/consistency.py. Every write answers with a token, `<topic>/<partition>:<offset>[,...]`:
// where in the log it landed. The client keeps, per user, the highest offset seen in each partition (so
// a slow answer to an older concurrent write never moves the token back) and passes it with that user's
// next reads, which the query API answers only once its read models applied it. The token is otherwise
// opaque: one the client cannot parse simply replaces the previous.

function parse(token: string): [string, Map<number, number>] | null {
  const slash = token.lastIndexOf("/");
  if (slash <= 0 || slash === token.length - 1) return null;
  const offsets = new Map<number, number>();
  for (const part of token.slice(slash + 1).split(",")) {
    const match = /^(\d+):(\d+)$/.exec(part);
    if (!match) return null;
    const partition = Number(match[1]);
    offsets.set(partition, Math.max(Number(match[2]), offsets.get(partition) ?? -1));
  }
  return [token.slice(0, slash), offsets];
}

/** A token covering both (the highest offset per partition); `next` if they cannot be merged. */
export function mergeTokens(previous: string | null | undefined, next: string): string {
  if (!previous) return next;
  const a = parse(previous);
  const b = parse(next);
  if (a === null || b === null || a[0] !== b[0]) return next;
  const offsets = new Map(a[1]);
  for (const [partition, offset] of b[1]) offsets.set(partition, Math.max(offset, offsets.get(partition) ?? -1));
  const parts = [...offsets.entries()].sort((x, y) => x[0] - y[0]).map(([p, o]) => `${p}:${o}`);
  return `${a[0]}/${parts.join(",")}`;
}

/** Bounded: the least recently used users are forgotten first. */
export class TokenStore {
  private tokens = new Map<string, string>();

  constructor(readonly maxUsers = 10_000) {}

  remember(user: string | null | undefined, token: unknown): void {
    if (!user || typeof token !== "string" || !token) return;
    const merged = mergeTokens(this.tokens.get(user), token);
    this.tokens.delete(user); // re-inserted last: the most recently used
    this.tokens.set(user, merged);
    while (this.tokens.size > this.maxUsers) this.tokens.delete(this.tokens.keys().next().value as string);
  }

  get(user: string | null | undefined): string | undefined {
    return user ? this.tokens.get(user) : undefined;
  }

  forget(user?: string): void {
    if (user === undefined) this.tokens.clear();
    else this.tokens.delete(user);
  }
}
