import { FormEvent, useCallback, useEffect, useState } from "react";
import { CoreBlock } from "../api";
import { ConfirmDialog } from "../components/Dialog";
import { Status } from "../components/Status";
import { useSession } from "../session";

// Core memory blocks (docs/api.md, "Core memory blocks"): the acting user's user-wide blocks, or one
// agent's; each with its size against its limit, editable in place (set), with a line appended, or
// deleted; and a form to create one. Every change goes through the TypeScript SDK's coreMemory.
export function CoreMemoryPage() {
  const { api } = useSession();
  const [agent, setAgent] = useState("");
  const [blocks, setBlocks] = useState<CoreBlock[] | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);

  const agentId = agent.trim() || null;
  const load = useCallback(async () => {
    setBusy(true);
    try {
      setBlocks(await api.coreBlocks(agentId));
      setError(null);
    } catch (exc) {
      setError((exc as Error).message);
    } finally {
      setBusy(false);
    }
  }, [api, agentId]);

  useEffect(() => {
    load();
  }, [load]);

  async function act(work: () => Promise<unknown>, done: string) {
    try {
      await work();
      setMessage(done);
      setError(null);
      await load();
    } catch (exc) {
      setMessage(null);
      setError((exc as Error).message);
    }
  }

  return (
    <section aria-labelledby="core-title">
      <h1 id="core-title">Core memory</h1>
      <p className="muted">Small named blocks always placed first in the context of this user's agents.</p>
      <label>
        Agent (empty: the user-wide blocks){" "}
        <input value={agent} onChange={(e) => setAgent(e.target.value)} placeholder="agent_id" aria-label="Agent" />
      </label>
      <Status busy={busy} error={error} message={message} />
      {blocks && blocks.length === 0 && <p data-testid="core-empty">No blocks yet.</p>}
      {blocks?.map((block) => (
        <BlockCard key={`${block.agent_id ?? ""}/${block.label}`} block={block} act={act} />
      ))}
      <NewBlock onCreate={(label, value, limit) => act(() => api.coreSet(label, value, agentId, limit), `Created ${label}`)} />
    </section>
  );
}

type Act = (work: () => Promise<unknown>, done: string) => Promise<void>;

function BlockCard({ block, act }: { block: CoreBlock; act: Act }) {
  const { api } = useSession();
  const [value, setValue] = useState(block.value);
  const [line, setLine] = useState("");
  const [confirming, setConfirming] = useState(false);
  useEffect(() => setValue(block.value), [block.value]);
  const id = `block-${block.agent_id ?? ""}-${block.label}`;
  return (
    <article className="card edit" aria-labelledby={id} data-testid="core-block">
      <h2 id={id}><code>{block.label}</code>{block.agent_id && <> of agent <code>{block.agent_id}</code></>}</h2>
      {block.description && <p className="muted">{block.description}</p>}
      <p>
        <progress max={block.limit_tokens} value={block.tokens} aria-label={`${block.label} size`} />{" "}
        <span data-testid="core-size">{block.tokens} / {block.limit_tokens} tokens</span>, version {block.version}
      </p>
      <label htmlFor={`${id}-value`}>Value</label>
      <textarea id={`${id}-value`} rows={Math.min(12, Math.max(3, value.split("\n").length + 1))} value={value}
        onChange={(e) => setValue(e.target.value)} />
      <div>
        <button disabled={value === block.value}
          onClick={() => act(() => api.coreSet(block.label, value, block.agent_id), `Saved ${block.label}`)}>Save</button>{" "}
        <button onClick={() => setConfirming(true)}>Delete</button>
      </div>
      <form onSubmit={(e: FormEvent) => {
        e.preventDefault();
        if (line.trim()) act(() => api.coreAppend(block.label, line, block.agent_id), `Appended to ${block.label}`).then(() => setLine(""));
      }}>
        <label htmlFor={`${id}-append`}>Append a line</label>{" "}
        <input id={`${id}-append`} value={line} onChange={(e) => setLine(e.target.value)} />{" "}
        <button type="submit" disabled={!line.trim()}>Append</button>
      </form>
      <ConfirmDialog open={confirming} title={`Delete block ${block.label}?`} confirm="Delete"
        onCancel={() => setConfirming(false)}
        onConfirm={() => { setConfirming(false); act(() => api.coreDelete(block.label, block.agent_id), `Deleted ${block.label}`); }}>
        Its history stays in the log.
      </ConfirmDialog>
    </article>
  );
}

function NewBlock({ onCreate }: { onCreate: (label: string, value: string, limit: number | undefined) => void }) {
  const [label, setLabel] = useState("");
  const [value, setValue] = useState("");
  const [limit, setLimit] = useState("");
  return (
    <form className="card edit" aria-labelledby="new-block" onSubmit={(e: FormEvent) => {
      e.preventDefault();
      onCreate(label.trim(), value, limit ? Number(limit) : undefined);
      setLabel(""); setValue(""); setLimit("");
    }}>
      <h2 id="new-block">New block</h2>
      <label htmlFor="new-label">Label (a-z 0-9 _ -)</label>
      <input id="new-label" value={label} pattern="[a-z0-9][a-z0-9_\-]{0,63}" required onChange={(e) => setLabel(e.target.value)} />
      <label htmlFor="new-value">Value</label>
      <textarea id="new-value" rows={3} value={value} onChange={(e) => setValue(e.target.value)} />
      <label htmlFor="new-limit">Limit in tokens (16-8,000; default 500)</label>
      <input id="new-limit" type="number" min={16} max={8000} value={limit} onChange={(e) => setLimit(e.target.value)} />
      <div><button type="submit" disabled={!label.trim()}>Create</button></div>
    </form>
  );
}
