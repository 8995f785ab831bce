import { useEffect, useId, useState } from "react";
import { useSession } from "../session";

const USER_ID = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/;
// The same for the input's pattern attribute (a `v`-flag regex: "-" in a class is escaped).
const USER_ID_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.:@\\-]{0,127}";

// An admin key acts for any user but must name one (GET /v1/users suggests them).
export function UserPicker({ value, onChange }: { value: string | null; onChange: (user: string) => void }) {
  const { api } = useSession();
  const [draft, setDraft] = useState(value ?? "");
  const [users, setUsers] = useState<string[]>([]);
  const id = useId();
  useEffect(() => {
    api.users().then((page) => setUsers(page.results.map((u) => u.user_id))).catch(() => setUsers([]));
  }, [api]);
  return (
    <form
      className="picker"
      onSubmit={(e) => {
        e.preventDefault();
        if (USER_ID.test(draft)) onChange(draft);
      }}
    >
      <label htmlFor={id}>Acting for user</label>
      <input id={id} data-testid="user-picker" list={`${id}-users`} value={draft} onChange={(e) => setDraft(e.target.value)} pattern={USER_ID_PATTERN} required size={14} />
      <datalist id={`${id}-users`}>
        {users.map((u) => (
          <option key={u} value={u} />
        ))}
      </datalist>
      <button type="submit">Switch user</button>
    </form>
  );
}
