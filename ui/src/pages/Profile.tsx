import { useEffect, useState } from "react";
import { ApiError, Profile } from "../api";
import { Link } from "../components/Link";
import { Status } from "../components/Status";
import { useSession } from "../session";

// GET /v1/users/{id}/profile (docs/api.md, "User profile"): who the acting user is, in sections, each
// item linking to the memories it came from; its version and whether memories changed since it was built.
const SECTIONS = [
  ["preferences", "Preferences"],
  ["facts", "Facts"],
  ["projects", "Projects"],
  ["tools", "Tools"],
  ["people", "People"],
  ["instructions", "Instructions"],
] as const;

export function ProfilePage() {
  const { api } = useSession();
  const [profile, setProfile] = useState<Profile | null>(null);
  const [missing, setMissing] = useState(false);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.profile().then(setProfile).catch((exc) => {
      if (exc instanceof ApiError && exc.status === 404) setMissing(true);
      else setError(exc.message);
    });
  }, [api]);
  return (
    <section aria-labelledby="profile-title">
      <h1 id="profile-title">Profile</h1>
      <Status error={error} busy={!profile && !missing && !error} />
      {missing && <p data-testid="profile-missing">No profile yet: this user has no memories.</p>}
      {profile && (
        <>
          <p className="muted" data-testid="profile-version">
            {profile.version === 0
              ? "Built just now from the memories (the consolidation worker has not stored one yet)."
              : `Version ${profile.version}, built ${new Date(String(profile.updated_at)).toLocaleString()} by ${profile.builder} from ${profile.memory_count} memories.`}
            {profile.stale && " Memories changed since: the next pass refreshes it."}
          </p>
          <div className="columns">
            {SECTIONS.map(([key, title]) => (
              <div className="card" key={key} data-testid={`profile-${key}`}>
                <h2>{title}</h2>
                {(profile.profile[key] ?? []).length === 0 ? <p className="muted">Nothing yet.</p> : (
                  <ul>
                    {profile.profile[key].map((item) => (
                      <li key={item.text}>
                        {item.text}{" "}
                        {item.memory_ids.map((id, n) => (
                          <Link key={id} href={`/memories/${id}`} aria-label={`memory ${n + 1} of ${item.text}`}>[{n + 1}]</Link>
                        ))}
                      </li>
                    ))}
                  </ul>
                )}
              </div>
            ))}
          </div>
        </>
      )}
    </section>
  );
}
