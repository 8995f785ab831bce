// The export file of `recallstack export` / `import` (cli/memory_file.py): line 1 a header,
// then one memory a line. Written and read here the same way, so files go both ways.
import { Memory } from "./api";

export const FORMAT = "recallstack.memories";
export const VERSION = 2; // version 1 (read too) had no expires_at
const MEMORY_FIELDS = ["id", "memory", "metadata", "categories", "importance", "agent_id", "run_id", "app_id", "state",
  "created_at", "updated_at", "occurred_at", "expires_at"] as const;
const VECTOR_FIELDS = ["embedding", "embedding_model"];
const MAX_BATCH = 500; // like the CLI's default; POST /v1/memories/batch takes up to 1,000
const MAX_BATCH_BYTES = 12 * 1024 * 1024; // under its 16 MiB body limit

export type Header = { user_id: string; exported_at: string; embedding_model: string | null; dim: number | null; count: number };
type Doc = Record<string, unknown>;

// Byte for byte what the CLI writes: the header with Python's json.dumps spacing, memories compact.
export function headerLine(header: Header): string {
  const fields = Object.entries({ format: FORMAT, version: VERSION, ...header });
  return "{" + fields.map(([name, value]) => `${JSON.stringify(name)}: ${JSON.stringify(value)}`).join(", ") + "}\n";
}

export function exportedAt(now = new Date()): string {
  return now.toISOString().replace("Z", "+00:00"); // as Python's datetime.isoformat() writes UTC
}

export function memoryLine(memory: Memory): string {
  const doc: Doc = {};
  for (const name of MEMORY_FIELDS) doc[name] = (memory as unknown as Doc)[name] ?? null;
  return JSON.stringify(doc) + "\n";
}

export class FileError extends Error {
  constructor(public problems: string[]) {
    super(`the file is not a recallstack export: ${problems.slice(0, 3).join("; ")}${problems.length > 3 ? ` (and ${problems.length - 3} more)` : ""}`);
  }
}

// The header and the memories, or FileError naming each line at fault (1 = the header);
// the command API checks each memory's limits again.
export function readExport(bytes: Uint8Array): { header: Header; entries: Doc[] } {
  const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  const lines = text.split("\n");
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  const problems: string[] = [];
  const parse = (line: string, n: number): Doc | null => {
    try {
      const value = JSON.parse(line);
      if (value && typeof value === "object" && !Array.isArray(value)) return value as Doc;
      problems.push(`line ${n}: expected a JSON object`);
    } catch (exc) {
      problems.push(`line ${n}: not valid JSON (${(exc as Error).message})`);
    }
    return null;
  };
  if (!lines.length) throw new FileError(["line 1: the file is empty: expected the header line"]);
  const header = parse(lines[0], 1);
  if (header && header.format !== FORMAT) problems.push(`line 1, field format: expected "${FORMAT}"`);
  if (header && header.version !== 1 && header.version !== 2) problems.push(`line 1, field version: this UI reads versions 1 and 2`);
  const known = (MEMORY_FIELDS as readonly string[]).filter((name) => header?.version !== 1 || name !== "expires_at");
  const entries: Doc[] = [];
  const seen = new Map<string, number>();
  lines.slice(1).forEach((line, i) => {
    const n = i + 2;
    const doc = parse(line, n);
    if (!doc) return;
    for (const name of Object.keys(doc)) {
      if (!known.includes(name) && !VECTOR_FIELDS.includes(name)) problems.push(`line ${n}, field ${name}: unknown field`);
    }
    if (typeof doc.memory !== "string") problems.push(`line ${n}, field memory: missing`);
    if (typeof doc.id !== "string") problems.push(`line ${n}, field id: missing`);
    else if (seen.has(doc.id)) problems.push(`line ${n}, field id: duplicates the memory on line ${seen.get(doc.id)}`);
    else seen.set(doc.id, n);
    entries.push(doc);
  });
  if (header && typeof header.count === "number" && header.count !== lines.length - 1) {
    problems.push(`line 1, field count: the header says ${header.count} memories but the file has ${lines.length - 1}`);
  }
  if (problems.length || !header) throw new FileError(problems);
  return { header: header as unknown as Header, entries };
}

// The POST /v1/memories body that re-creates a memory for `userId` (cli/memory_file.add_body):
// the original id in metadata.imported_from, no inference, active. Vectors are left out:
// the command API embeds the text again.
export function addBody(doc: Doc, userId: string, exportedAt: string | null): Doc {
  const metadata = { ...((doc.metadata as Doc) ?? {}), imported_from: { id: doc.id, exported_at: exportedAt } };
  const body: Doc = { user_id: userId, text: doc.memory, metadata, infer: false };
  for (const name of ["agent_id", "run_id", "app_id", "importance", "occurred_at", "expires_at"]) {
    if (doc[name] !== null && doc[name] !== undefined) body[name] = doc[name];
  }
  if (doc.categories !== null && doc.categories !== undefined) body.categories = doc.categories;
  return body;
}

// A memory whose expiry has passed would be invisible at once: an import leaves it out (as the CLI does).
export function expired(doc: Doc, now = new Date()): boolean {
  if (typeof doc.expires_at !== "string") return false;
  const text = /[zZ]|[+-]\d\d:?\d\d$/.test(doc.expires_at) ? doc.expires_at : doc.expires_at + "Z"; // naive is UTC
  return new Date(text).getTime() <= now.getTime();
}

export function chunks(bodies: Doc[]): Doc[][] {
  const out: Doc[][] = [];
  let current: Doc[] = [];
  let used = 0;
  for (const body of bodies) {
    const cost = new TextEncoder().encode(JSON.stringify(body)).length + 2;
    if (current.length && (current.length >= MAX_BATCH || used + cost > MAX_BATCH_BYTES)) {
      out.push(current);
      current = [];
      used = 0;
    }
    current.push(body);
    used += cost;
  }
  if (current.length) out.push(current);
  return out;
}

// sha256 of the file, hex: Idempotency-Keys ui-import-<digest[:40]>-<batch> (the CLI uses import-...; its bodies carry vectors, so the keys differ).
export async function importKey(bytes: Uint8Array): Promise<string> {
  if (crypto?.subtle) {
    const hash = await crypto.subtle.digest("SHA-256", bytes as BufferSource);
    return [...new Uint8Array(hash)].map((b) => b.toString(16).padStart(2, "0")).join("");
  }
  // Not a secure context (plain HTTP to a remote host): a weaker digest of the bytes still
  // makes a re-run of the same file send the same keys.
  let h1 = 0x811c9dc5, h2 = 0x01000193;
  for (const b of bytes) {
    h1 = Math.imul(h1 ^ b, 16777619) >>> 0;
    h2 = Math.imul(h2 + b, 2246822519) >>> 0;
  }
  return (h1.toString(16).padStart(8, "0") + h2.toString(16).padStart(8, "0")).repeat(3);
}
