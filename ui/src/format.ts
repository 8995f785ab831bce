// A time from the API (ISO 8601) in the reader's locale; "—" for none.
export function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  const date = new Date(iso);
  return isNaN(date.getTime()) ? iso : date.toLocaleString();
}
