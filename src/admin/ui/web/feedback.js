// Feedback outside the page flow: the status toast (read by screen readers), the modal confirmation, and the
// report of a failed background load.
import { render } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { AuthError } from './api.js';
import { html } from './html.js';

let show = null;
let timer;

/** A transient status message in the layout's role=status region (dropped when no layout is shown). */
export function announce(text, kind = 'info') {
  if (show === null) return;
  show({ text, kind });
  clearTimeout(timer);
  timer = setTimeout(() => show?.(null), 6000);
}

export function Toast() {
  const [msg, setMsg] = useState(null);
  useEffect(() => {
    show = setMsg;
    return () => {
      if (show === setMsg) show = null;
    };
  }, []);
  return html`<div id="toast" role="status" aria-live="polite">${msg && html`<div class=${`toast ${msg.kind}`}>${msg.text}</div>`}</div>`;
}

/** Errors of loads started by effects: a rejected key is handled by the shell (back to sign-in). */
export function report(err) {
  if (err instanceof AuthError) return;
  announce(`Error: ${err?.message ?? err}`, 'error');
}

function Confirm({ title, message, confirmLabel, done }) {
  const ref = useRef(null);
  useLayoutEffect(() => ref.current.showModal(), []);
  const onCancel = (e) => {
    e.preventDefault();
    done(false);
  };
  return html`<dialog class="confirm" aria-labelledby="confirm-title" ref=${ref} onCancel=${onCancel}>
    <h2 id="confirm-title">${title}</h2>
    <p>${message}</p>
    <div class="actions">
      <button type="button" class="danger" onClick=${() => done(true)}>${confirmLabel}</button>
      <button type="button" onClick=${() => done(false)}>Cancel</button>
    </div>
  </dialog>`;
}

/** A modal confirmation (native <dialog>: focus trapped, Escape cancels). Resolves true on confirm. */
export function confirmDialog(title, message, confirmLabel = 'Confirm') {
  return new Promise((resolve) => {
    const host = document.createElement('div');
    document.body.appendChild(host);
    const done = (v) => {
      // close() before removal hands focus back to the element that opened the dialog.
      host.querySelector('dialog')?.close();
      render(null, host);
      host.remove();
      resolve(v);
    };
    render(html`<${Confirm} title=${title} message=${message} confirmLabel=${confirmLabel} done=${done} />`, host);
  });
}
