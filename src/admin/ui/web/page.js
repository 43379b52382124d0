// The head of every page: its <h1> (also the document title) and the page's actions beside it.
import { useEffect } from 'preact/hooks';
import { html } from './html.js';

export function PageHead({ title, extra = null, children }) {
  useEffect(() => {
    document.title = `${title} · Switchyard`;
  }, [title]);
  return html`<div class="page-head"><h1>${title}${extra}</h1>${children}</div>`;
}
