// The dashboard shell: login, navigation and a hash router (#/routes, #/routes/new, #/routes/edit/<id>,
// #/consumers/<u>/credentials, #/routes/effective/<id>, #/health, #/traffic, #/config).
import { AuthError, login, session } from './api.js';
import { announce, h, replace } from './dom.js';
import { editorPage } from './edit.js';
import { effectivePage } from './effective.js';
import { KIND_BY_NAME, KINDS } from './kinds.js';
import { listPage } from './list.js';
import { configPage, healthPage, trafficPage } from './live.js';

const app = document.getElementById('app');
let stopPage = null;

const LIVE = [['health', 'Upstream health'], ['traffic', 'Traffic'], ['config', 'Config']];

function credentialsKind(user) {
  const u = encodeURIComponent(user);
  return {
    name: 'credentials', title: 'Credentials', singular: 'credential', id: 'optional', search: [], pluginSchema: 'consumer',
    base: `/consumers/${u}/credentials`, routeBase: `#/consumers/${u}/credentials`, parentLabel: `consumer ${user}`,
    columns: [['Name', (v) => v.name], ['Description', (v) => v.desc], ['Plugins', (v) => Object.keys(v.plugins ?? {}).join(', ')]],
  };
}

function loginView(message) {
  const key = h('input', { type: 'password', id: 'admin-key', autocomplete: 'off', required: true });
  const err = h('p', { class: 'error', role: 'alert', id: 'login-error', hidden: !message }, message ?? '');
  const submit = async (e) => {
    e.preventDefault();
    err.hidden = true;
    try {
      const r = await login(key.value);
      if (!r.ok) {
        err.textContent = `Sign-in failed: ${r.error}`;
        err.hidden = false;
        key.focus();
        return;
      }
      session.set(key.value, r.role);
      if (location.hash === '' || location.hash === '#/login') location.hash = '#/routes';
      else route();
    } catch (e2) {
      err.textContent = `Sign-in failed: ${e2.message}`;
      err.hidden = false;
    }
  };
  replace(app, h('main', { class: 'login', id: 'main' },
    h('form', { class: 'card', on: { submit } },
      h('h1', null, 'Switchyard'),
      h('p', { class: 'muted' }, 'Sign in with an Admin API key. It is kept in this tab only (session storage).'),
      h('div', { class: 'field' }, h('label', { for: 'admin-key' }, 'Admin key'), key),
      err,
      h('button', { type: 'submit', class: 'primary', id: 'login' }, 'Sign in'))));
  key.focus();
}

function shell(current) {
  const link = (hash, label, key) => h('li', null, h('a', { href: hash, 'aria-current': key === current ? 'page' : undefined }, label));
  const main = h('main', { id: 'main', tabindex: '-1' });
  replace(app,
    h('header', { class: 'top' },
      h('a', { class: 'brand', href: '#/routes' }, 'Switchyard'),
      h('span', { class: `pill role ${session.role}`, id: 'role' }, session.role),
      h('button', { type: 'button', id: 'logout', on: { click: () => { session.clear(); location.hash = '#/login'; loginView(); } } }, 'Sign out')),
    h('div', { class: 'layout' },
      h('nav', { class: 'side', 'aria-label': 'Main' },
        h('h2', { class: 'nav-h' }, 'Resources'), h('ul', null, KINDS.map((k) => link(`#/${k.name}`, k.title, k.name))),
        h('h2', { class: 'nav-h' }, 'Live'), h('ul', null, LIVE.map(([k, t]) => link(`#/${k}`, t, k)))),
      main),
    h('div', { id: 'toast', role: 'status', 'aria-live': 'polite' }));
  return main;
}

async function route() {
  stopPage?.();
  stopPage = null;
  if (session.key === null) return loginView();
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const [first = 'routes'] = parts;
  if (first === 'login' || first === '') {
    location.hash = '#/routes';
    return;
  }
  const main = shell(first);
  try {
    if (first === 'health') stopPage = healthPage(main);
    else if (first === 'traffic') stopPage = trafficPage(main);
    else if (first === 'config') await configPage(main);
    else if (first === 'routes' && parts[1] === 'effective') await effectivePage(main, parts[2]);
    else if (first === 'consumers' && parts[2] === 'credentials') {
      const kind = credentialsKind(parts[1]);
      if (parts[3] === 'new') await editorPage(main, kind, null);
      else if (parts[3] === 'edit') await editorPage(main, kind, parts[4]);
      else await listPage(main, kind);
    } else {
      const kind = KIND_BY_NAME.get(first);
      if (!kind) return replace(main, h('h1', null, 'Not found'), h('p', null, `No page named ${first}.`));
      if (parts[1] === 'new') await editorPage(main, kind, null);
      else if (parts[1] === 'edit') await editorPage(main, kind, parts.slice(2).join('/'));
      else await listPage(main, kind);
    }
    document.title = `${main.querySelector('h1')?.textContent ?? 'Dashboard'} · Switchyard`;
  } catch (err) {
    if (err instanceof AuthError) {
      session.clear();
      return loginView(`Your key was rejected (${err.message}); sign in again.`);
    }
    announce(`Error: ${err.message}`, 'error');
    throw err;
  }
}

window.addEventListener('hashchange', () => {
  route().then(() => document.getElementById('main')?.focus({ preventScroll: true }));
});
route();
