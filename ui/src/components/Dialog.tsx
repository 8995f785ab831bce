import { useEffect, useRef } from "react";

// A modal <dialog>: focus moves into it, Escape cancels (the browser's own handling), Enter
// on the confirm button (focused first) confirms.
export function ConfirmDialog(props: { open: boolean; title: string; children: React.ReactNode; confirm: string; onConfirm: () => void; onCancel: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (props.open && !dialog.open) dialog.showModal();
    if (!props.open && dialog.open) dialog.close();
  }, [props.open]);
  return (
    <dialog ref={ref} aria-labelledby="dialog-title" onCancel={(e) => { e.preventDefault(); props.onCancel(); }}>
      <form method="dialog" onSubmit={(e) => { e.preventDefault(); props.onConfirm(); }}>
        <h2 id="dialog-title">{props.title}</h2>
        <div>{props.children}</div>
        <div className="actions">
          <button type="button" onClick={props.onCancel}>Cancel</button>
          <button type="submit" className="danger" autoFocus>{props.confirm}</button>
        </div>
      </form>
    </dialog>
  );
}
