// The shapes of the ids the SDK puts in URLs and bodies, checked before any request (the API's own
// rules, as the Python SDK's recallstack/ids.py): a memory id is a UUID; user, agent, run and app ids
// are 1-128 of A-Z a-z 0-9 _ . : @ -, starting with a letter or digit. A value that is not what its
// argument names is refused with InvalidRequest naming the argument, so nothing a caller passes can
// turn a call into a request for another endpoint ("../../v1/memories" never reaches the network).

import { InvalidRequest } from "./errors.js";

// Anchored at both ends; JavaScript's `$` without the m flag matches only at the very end.
export const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
export const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/;

function shown(value: unknown): string {
  let text: string;
  try {
    text = typeof value === "string" ? JSON.stringify(value) : String(value);
  } catch {
    text = typeof value;
  }
  return text.length <= 80 ? text : text.slice(0, 77) + "...";
}

/** `value` as a canonical (lower-case) UUID string; InvalidRequest naming `name` otherwise. */
export function uuidArg(value: unknown, name: string): string {
  if (typeof value !== "string" || !UUID_RE.test(value)) {
    throw new InvalidRequest(`${name}: not a UUID (like 6f1c2a9e-0d7b-4c1e-9a55-3e2b8f0a1c44): ${shown(value)}`,
      { code: "invalid_request", details: { field: name } });
  }
  return value.toLowerCase();
}

/** `value` if it is a user/agent/run/app id; InvalidRequest naming `name` otherwise. */
export function idArg(value: unknown, name: string): string {
  if (typeof value !== "string" || !ID_RE.test(value)) {
    throw new InvalidRequest(`${name}: not a valid id (1-128 of A-Z a-z 0-9 _ . : @ -, starting with a letter or `
      + `digit): ${shown(value)}`, { code: "invalid_request", details: { field: name } });
  }
  return value;
}

export function optionalId(value: unknown, name: string): string | undefined {
  return value === undefined || value === null ? undefined : idArg(value, name);
}
