// List pages: Admin API paging (page/page_size) and filters (name/uri regex, label key), row actions and the
// delete flow with APISIX's force-delete for objects still referenced.
import { api, errorText, session, uiApi } from './api.js';
import { announce, brief, confirmDialog, h, replace } from './dom.js';

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
  return h('span', { class: `pill ${cls}`, title: `${leaf.subject}; issuer ${leaf.issuer}; SAN ${leaf.dns_names.join(', ')}` },
    `${leaf.not_after.slice(0, 10)} (${days < 0 ? 'expired' : `${days} d`})`);
}

export async function listPage(main, kind, state = { page: 1, field: kind.search?.[0] ?? 'name', q: '' }) {
  const ro = session.readOnly;
  const table = h('div', { class: 'table-wrap' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  const search = h('input', { type: 'search', id: 'list-search', value: state.q, placeholder: 'regex or label key', autocomplete: 'off' });
  const field = h('select', { id: 'list-field', 'aria-label': 'Search field' }, (kind.search ?? []).map((f) => h('option', { value: f }, f)));
  field.value = state.field;
  const load = async () => {
    const qs = new URLSearchParams({ page: String(state.page), page_size: String(PAGE_SIZE) });
    if (state.q !== '') qs.set(state.field, state.field === 'label' ? state.q : state.q);
    const [r, certs] = await Promise.all([
      api('GET', `${basePath(kind)}?${qs}`),
      kind.name === 'ssls' ? uiApi('ssls').catch(() => null) : null,
    ]);
    if (!r.ok) {
      replace(table, h('p', { class: 'error', role: 'alert' }, errorText(r)));
      replace(pager);
      return;
    }
    const list = r.body?.list ?? [];
    const total = r.body?.total ?? list.length;
    const bySsl = new Map((certs?.ok ? certs.body.list : []).map((s) => [s.id, s]));
    const cols = [...kind.columns];
    if (kind.name === 'ssls') cols.push(['Expires', (_v, id) => expiryCell(bySsl.get(id))]);
    const rows = list.map((item) => {
      const v = item.value ?? {};
      const id = localId(kind, item);
      const edit = `${routeBase(kind)}/edit/${encodeURIComponent(id)}`;
      const actions = [h('a', { href: edit, class: 'btn small' }, ro ? 'View' : 'Edit')];
      if (kind.name === 'routes') actions.push(h('a', { href: `#/routes/effective/${encodeURIComponent(id)}`, class: 'btn small' }, 'Effective'));
      if (kind.name === 'consumers') actions.push(h('a', { href: `#/consumers/${encodeURIComponent(id)}/credentials`, class: 'btn small' }, 'Credentials'));
      if (!ro) {
        actions.push(h('button', {
          type: 'button', class: 'small danger', 'aria-label': `Delete ${kind.singular} ${id}`,
          on: { click: async () => { if (await deleteFlow(kind, id)) await load(); } },
        }, 'Delete'));
      }
      return h('tr', { 'data-id': id },
        h('td', null, h('a', { href: edit }, id)),
        cols.map(([, f]) => {
          const c = f(v, id);
          return h('td', null, c instanceof Node ? c : brief(c, 60));
        }),
        h('td', { class: 'actions' }, actions));
    });
    replace(table, list.length === 0
      ? h('p', { class: 'muted' }, state.q === '' ? `No ${kind.title.toLowerCase()} yet.` : 'Nothing matches.')
      : h('table', null,
        h('caption', { class: 'sr-only' }, `${kind.title}, page ${state.page}`),
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'ID'), cols.map(([t]) => h('th', { scope: 'col' }, t)), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
        h('tbody', null, rows)));
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    replace(pager,
      h('button', { type: 'button', disabled: state.page <= 1, on: { click: () => { state.page -= 1; load(); } } }, 'Previous'),
      h('span', { 'aria-live': 'polite' }, ` Page ${state.page} of ${pages} (${total} total) `),
      h('button', { type: 'button', disabled: state.page >= pages, on: { click: () => { state.page += 1; load(); } } }, 'Next'));
  };
  const onSearch = (e) => {
    e.preventDefault();
    state.page = 1;
    state.field = field.value;
    state.q = field.value === 'label' ? search.value.trim() : search.value.trim() === '' ? '' : escapeRegex(search.value.trim());
    load();
  };
  replace(main,
    h('div', { class: 'page-head' },
      h('h1', null, kind.title, kind.parentLabel ? h('span', { class: 'muted' }, ` of ${kind.parentLabel}`) : null),
      ro ? h('span', { class: 'pill' }, 'read-only') : h('a', { href: `${routeBase(kind)}/new`, class: 'btn primary' }, `Create ${kind.singular}`)),
    (kind.search ?? []).length > 0
      ? h('form', { class: 'search', role: 'search', on: { submit: onSearch } },
        h('label', { for: 'list-search' }, 'Search'), field, search, h('button', { type: 'submit' }, 'Search'))
      : null,
    table, pager);
  await load();
}
