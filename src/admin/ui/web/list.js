// List pages: Admin API paging (page/page_size) and filters (name/uri regex, label key), row actions and the
// delete flow with APISIX's force-delete for objects still referenced.
import { isValidElement } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, errorText, session, uiApi } from './api.js';
import { announce, confirmDialog, report } from './feedback.js';
import { html } from './html.js';
import { PageHead } from './page.js';
import { brief } from './util.js';

const PAGE_SIZE = 20;

function escapeRegex(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** An id in an Admin API path: secrets ids are `<manager>/<id>` and keep their slash. */
export function idPath(id) {
  return String(id).split('/').map(encodeURIComponent).join('/');
}

export function basePath(kind) {
  return kind.base ?? `/${kind.name}`;
}

export function routeBase(kind) {
  return kind.routeBase ?? `#/${kind.name}`;
}

/** Deletes with confirmation; a "still using it now" refusal offers the force delete. Resolves true if gone. */
export async function deleteFlow(kind, id) {
  if (!(await confirmDialog(`Delete ${kind.singular} ${id}?`, 'This cannot be undone.', 'Delete'))) return false;
  const path = `${basePath(kind)}/${idPath(id)}`;
  let r = await api('DELETE', path);
  if (r.status === 400 && /still using it now/.test(errorText(r))) {
    const force = await confirmDialog('Still in use', `${errorText(r)}. Delete it anyway (force)? Objects referring to it will break.`, 'Force delete');
    if (!force) return false;
    r = await api('DELETE', `${path}?force=true`);
  }
  if (!r.ok) {
    announce(`Delete failed: ${errorText(r)}`, 'error');
    return false;
  }
  announce(`Deleted ${kind.singular} ${id}`);
  return true;
}

function idOf(item) {
  const v = item.value ?? {};
  if (v.id !== undefined) return String(v.id);
  if (v.username !== undefined) return String(v.username);
  const key = String(item.key ?? '');
  return key.slice(key.lastIndexOf('/') + 1);
}

/** The id used in URLs below the kind's base path (credentials are stored as <user>/credentials/<id>). */
function localId(kind, item) {
  const id = idOf(item);
  if (kind.name === 'credentials') return id.slice(id.lastIndexOf('/') + 1);
  return id;
}

function expiryCell(summary) {
  if (!summary) return '';
  const leaf = summary.certs[0];
  if (!leaf || leaf.error) return leaf?.error ?? '';
  const days = Math.floor((leaf.expires_at * 1000 - Date.now()) / 86_400_000);
  const cls = days < 0 ? 'bad' : days < 30 ? 'warn' : 'good';
  return html`<span class=${`pill ${cls}`} title=${`${leaf.subject}; issuer ${leaf.issuer}; SAN ${leaf.dns_names.join(', ')}`}>
    ${`${leaf.not_after.slice(0, 10)} (${days < 0 ? 'expired' : `${days} d`})`}</span>`;
}

async function load(kind, q) {
  const qs = new URLSearchParams({ page: String(q.page), page_size: String(PAGE_SIZE) });
  if (q.text !== '') qs.set(q.field, q.text);
  const [r, certs] = await Promise.all([
    api('GET', `${basePath(kind)}?${qs}`),
    kind.name === 'ssls' ? uiApi('ssls').catch(() => null) : null,
  ]);
  if (!r.ok) return { error: errorText(r) };
  const list = r.body?.list ?? [];
  return {
    list,
    total: r.body?.total ?? list.length,
    certs: new Map((certs?.ok ? certs.body.list : []).map((s) => [s.id, s])),
  };
}

export function ListPage({ kind }) {
  const ro = session.readOnly;
  const search = kind.search ?? [];
  // The query in force; the search box and field are only applied on submit.
  const [q, setQ] = useState({ page: 1, field: search[0] ?? 'name', text: '', n: 0 });
  const [field, setField] = useState(q.field);
  const [input, setInput] = useState('');
  const [res, setRes] = useState(null);
  useEffect(() => {
    let current = true;
    load(kind, q).then((r) => current && setRes(r), report);
    return () => {
      current = false;
    };
  }, [q]);

  const onSearch = (e) => {
    e.preventDefault();
    const t = input.trim();
    setQ({ page: 1, field, text: field === 'label' || t === '' ? t : escapeRegex(t), n: q.n + 1 });
  };
  const reload = () => setQ({ ...q, n: q.n + 1 });
  const cols = [...kind.columns];
  if (kind.name === 'ssls') cols.push(['Expires', (_v, id) => expiryCell(res?.certs?.get(id))]);

  let table = null;
  let pager = null;
  if (res?.error !== undefined) {
    table = html`<p class="error" role="alert">${res.error}</p>`;
  } else if (res !== null) {
    const pages = Math.max(1, Math.ceil(res.total / PAGE_SIZE));
    table = res.list.length === 0
      ? html`<p class="muted">${q.text === '' ? `No ${kind.title.toLowerCase()} yet.` : 'Nothing matches.'}</p>`
      : html`<table>
        <caption class="sr-only">${kind.title}, page ${q.page}</caption>
        <thead><tr><th scope="col">ID</th>${cols.map(([t]) => html`<th scope="col">${t}</th>`)}<th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
        <tbody>${res.list.map((item) => html`<${Row} key=${localId(kind, item)} kind=${kind} item=${item} cols=${cols} ro=${ro} onDeleted=${reload} />`)}</tbody>
      </table>`;
    pager = html`
      <button type="button" disabled=${q.page <= 1} onClick=${() => setQ({ ...q, page: q.page - 1 })}>Previous</button>
      <span aria-live="polite"> Page ${q.page} of ${pages} (${res.total} total) </span>
      <button type="button" disabled=${q.page >= pages} onClick=${() => setQ({ ...q, page: q.page + 1 })}>Next</button>`;
  }

  return html`
    <${PageHead} title=${kind.title} extra=${kind.parentLabel ? html`<span class="muted"> of ${kind.parentLabel}</span>` : null}>
      ${ro ? html`<span class="pill">read-only</span>` : html`<a href=${`${routeBase(kind)}/new`} class="btn primary">Create ${kind.singular}</a>`}
    <//>
    ${search.length > 0 && html`<form class="search" role="search" onSubmit=${onSearch}>
      <label for="list-search">Search</label>
      <select id="list-field" aria-label="Search field" value=${field} onChange=${(e) => setField(e.currentTarget.value)}>
        ${search.map((f) => html`<option value=${f}>${f}</option>`)}
      </select>
      <input type="search" id="list-search" value=${input} onInput=${(e) => setInput(e.currentTarget.value)} placeholder="regex or label key" autocomplete="off" />
      <button type="submit">Search</button>
    </form>`}
    <div class="table-wrap">${table}</div>
    <nav class="pager" aria-label="Pages">${pager}</nav>`;
}

function Row({ kind, item, cols, ro, onDeleted }) {
  const v = item.value ?? {};
  const id = localId(kind, item);
  const edit = `${routeBase(kind)}/edit/${encodeURIComponent(id)}`;
  const del = async () => {
    if (await deleteFlow(kind, id)) onDeleted();
  };
  return html`<tr data-id=${id}>
    <td><a href=${edit}>${id}</a></td>
    ${cols.map(([, f]) => {
      const c = f(v, id);
      return html`<td>${isValidElement(c) ? c : brief(c, 60)}</td>`;
    })}
    <td class="actions">
      <a href=${edit} class="btn small">${ro ? 'View' : 'Edit'}</a>
      ${kind.name === 'routes' && html`<a href=${`#/routes/effective/${encodeURIComponent(id)}`} class="btn small">Effective</a>`}
      ${kind.name === 'consumers' && html`<a href=${`#/consumers/${encodeURIComponent(id)}/credentials`} class="btn small">Credentials</a>`}
      ${!ro && html`<button type="button" class="small danger" aria-label=${`Delete ${kind.singular} ${id}`} onClick=${() => del().catch(report)}>Delete</button>`}
    </td>
  </tr>`;
}
