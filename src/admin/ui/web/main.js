// The dashboard shell: sign-in, navigation and a hash router (#/routes, #/routes/new, #/routes/edit/<id>,
// #/consumers/<u>/credentials, #/routes/effective/<id>, #/health, #/traffic, #/config).
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { login, onAuthLost, session } from './api.js';
import { EditorPage } from './edit.js';
import { EffectivePage } from './effective.js';
import { Toast } from './feedback.js';
import { html } from './html.js';
import { KIND_BY_NAME, KINDS } from './kinds.js';
import { ListPage } from './list.js';
import { ConfigPage, HealthPage, TrafficPage } from './live.js';
import { PageHead } from './page.js';

const LIVE = [['health', 'Upstream health'], ['traffic', 'Traffic'], ['config', 'Config']];

function credentialsKind(user) {
  const u = encodeURIComponent(user);
  return {
    name: 'credentials', title: 'Credentials', singular: 'credential', id: 'optional', search: [], pluginSchema: 'consumer',
    base: `/consumers/${u}/credentials`, routeBase: `#/consumers/${u}/credentials`, parentLabel: `consumer ${user}`,
    columns: [['Name', (v) => v.name], ['Description', (v) => v.desc], ['Plugins', (v) => Object.keys(v.plugins ?? {}).join(', ')]],
  };
}

/** The page a hash names (parts are the decoded path segments after `#/`). */
function pageFor(parts) {
  const [first] = parts;
  if (first === 'health') return html`<${HealthPage} />`;
  if (first === 'traffic') return html`<${TrafficPage} />`;
  if (first === 'config') return html`<${ConfigPage} />`;
  if (first === 'routes' && parts[1] === 'effective') return html`<${EffectivePage} id=${parts[2]} />`;
  let kind;
  let rest;
  if (first === 'consumers' && parts[2] === 'credentials') {
    kind = credentialsKind(parts[1]);
    rest = parts.slice(3);
  } else {
    kind = KIND_BY_NAME.get(first);
    rest = parts.slice(1);
    if (!kind) return html`<${PageHead} title="Not found" /><p>No page named ${first}.</p>`;
  }
  if (rest[0] === 'new') return html`<${EditorPage} kind=${kind} id=${null} />`;
  if (rest[0] === 'edit') return html`<${EditorPage} kind=${kind} id=${rest.slice(1).join('/')} />`;
  return html`<${ListPage} kind=${kind} />`;
}

function Login({ message, onSignedIn }) {
  const [error, setError] = useState(message);
  const key = useRef(null);
  useEffect(() => key.current.focus(), []);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    const value = key.current.value;
    try {
      const r = await login(value);
      if (!r.ok) {
        setError(`Sign-in failed: ${r.error}`);
        key.current.focus();
        return;
      }
      session.set(value, r.role);
      onSignedIn();
    } catch (err) {
      setError(`Sign-in failed: ${err.message}`);
    }
  };
  return html`<main class="login" id="main">
    <form class="card" onSubmit=${submit}>
      <h1>Switchyard</h1>
      <p class="muted">Sign in with an Admin API key. It is kept in this tab only (session storage).</p>
      <div class="field"><label for="admin-key">Admin key</label><input type="password" id="admin-key" autocomplete="off" required ref=${key} /></div>
      <p class="error" role="alert" id="login-error" hidden=${error === null}>${error ?? ''}</p>
      <button type="submit" class="primary" id="login">Sign in</button>
    </form>
  </main>`;
}

/** A hash segment; a malformed escape is kept as typed (it then names no page). */
function decode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

// The skip link is handled here: following `#main` would be read as a route by the hash router.
function skipToMain(e) {
  e.preventDefault();
  document.getElementById('main')?.focus();
}

function App() {
  const [hash, setHash] = useState(location.hash);
  // Bumped when the session changes (sign-in, sign-out, a key rejected), which the hash alone does not show.
  const [, setAuthEpoch] = useState(0);
  const [loginMessage, setLoginMessage] = useState(null);
  const navigated = useRef(false);
  useEffect(() => {
    const onHash = () => {
      navigated.current = true;
      setHash(location.hash);
    };
    window.addEventListener('hashchange', onHash);
    onAuthLost((err) => {
      session.clear();
      setLoginMessage(`Your key was rejected (${err.message}); sign in again.`);
      setAuthEpoch((n) => n + 1);
    });
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  const parts = hash.replace(/^#\/?/, '').split('/').map(decode);
  const first = parts[0] ?? '';
  const signedIn = session.key !== null;
  const redirect = signedIn && (first === '' || first === 'login');
  useEffect(() => {
    if (redirect) location.hash = '#/routes';
    // After a navigation, focus moves to the page (screen readers start reading there), not left on the link.
    else if (signedIn && navigated.current) document.getElementById('main')?.focus({ preventScroll: true });
  }, [hash, signedIn]);

  if (!signedIn) {
    const onSignedIn = () => {
      setLoginMessage(null);
      if (first === '' || first === 'login') location.hash = '#/routes';
      setAuthEpoch((n) => n + 1);
    };
    return html`<a class="skip" href="#main" onClick=${skipToMain}>Skip to content</a><${Login} message=${loginMessage} onSignedIn=${onSignedIn} />`;
  }
  const signOut = () => {
    session.clear();
    location.hash = '#/login';
    setAuthEpoch((n) => n + 1);
  };
  const link = (href, label, key) => html`<li><a href=${href} aria-current=${key === first ? 'page' : undefined}>${label}</a></li>`;
  return html`
    <a class="skip" href="#main" onClick=${skipToMain}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/routes">Switchyard</a>
      <span class=${`pill role ${session.role}`} id="role">${session.role}</span>
      <button type="button" id="logout" onClick=${signOut}>Sign out</button>
    </header>
    <div class="layout">
      <nav class="side" aria-label="Main">
        <h2 class="nav-h">Resources</h2>
        <ul>${KINDS.map((k) => link(`#/${k.name}`, k.title, k.name))}</ul>
        <h2 class="nav-h">Live</h2>
        <ul>${LIVE.map(([k, t]) => link(`#/${k}`, t, k))}</ul>
      </nav>
      <main id="main" tabindex="-1">${redirect ? null : html`<${Page} key=${hash} parts=${parts} />`}</main>
    </div>
    <${Toast} />`;
}

function Page({ parts }) {
  return pageFor(parts);
}

render(html`<${App} />`, document.getElementById('app'));
