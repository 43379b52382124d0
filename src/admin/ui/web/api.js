// Admin API client. The key lives in sessionStorage only (per tab, gone when the tab closes) and is sent as
// the X-API-KEY header; it is never put in a URL (logs, history) or in the page.
const KEY = 'switchyard.adminKey';
const ROLE = 'switchyard.role';
export const ADMIN = '/apisix/admin';

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  get role() {
    return sessionStorage.getItem(ROLE) ?? 'viewer';
  },
  get readOnly() {
    return this.role !== 'admin';
  },
  set(key, role) {
    sessionStorage.setItem(KEY, key);
    sessionStorage.setItem(ROLE, role);
  },
  clear() {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(ROLE);
  },
};

/** Raised when the key is rejected; the shell, told through onAuthLost, returns to the sign-in form. */
export class AuthError extends Error {}

let authLost = null;
/** The shell's handler for a key the Admin API stopped accepting (removed from the config meanwhile). */
export function onAuthLost(fn) {
  authLost = fn;
}

function rejected(r) {
  const err = new AuthError(r.body?.description ?? 'unauthorized');
  authLost?.(err);
  return err;
}

async function call(method, url, body, key = session.key) {
  const headers = {};
  if (key !== null && key !== '') headers['X-API-KEY'] = key;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'omit',
    cache: 'no-store',
  });
  const text = await res.text();
  let data = text;
  try {
    data = text === '' ? undefined : JSON.parse(text);
  } catch {
    /* plain text answer (e.g. metrics) */
  }
  return { status: res.status, ok: res.ok, body: data, text };
}

export async function api(method, path, body) {
  const r = await call(method, ADMIN + path, body);
  if (r.status === 401 && r.body?.description !== 'invalid method for role viewer') throw rejected(r);
  return r;
}

/** The dashboard's own helper endpoints (/ui/api/...). */
export async function uiApi(name) {
  const r = await call('GET', `/ui/api/${name}`);
  if (r.status === 401) throw rejected(r);
  return r;
}

/**
 * Checks a key and finds its role. Reading proves the key; a write that changes nothing (a schema check of an
 * empty route) tells admin (400, the check ran) from viewer (401 "invalid method for role viewer").
 */
export async function login(key) {
  const read = await call('GET', `${ADMIN}/routes?page=1&page_size=10`, undefined, key);
  if (read.status === 401) return { ok: false, error: read.body?.description ?? 'wrong apikey' };
  if (!read.ok) return { ok: false, error: read.body?.error_msg ?? `Admin API answered ${read.status}` };
  const probe = await call('POST', `${ADMIN}/schema/validate/routes`, {}, key);
  const role = probe.status === 401 ? 'viewer' : 'admin';
  return { ok: true, role };
}

/** The APISIX error text of an answer. */
export function errorText(r) {
  const b = r.body;
  if (b && typeof b === 'object') return b.error_msg ?? b.message ?? JSON.stringify(b);
  return typeof b === 'string' && b !== '' ? b : `HTTP ${r.status}`;
}
