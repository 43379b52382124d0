// Live views: upstream node health (Control API /v1/healthcheck via the admin server), a traffic overview from
// the Prometheus exporter, and the effective config.yaml (secrets redacted). Each polls while shown and says
// plainly when its source is not available.
import { useEffect, useRef, useState } from 'preact/hooks';
import { errorText, uiApi } from './api.js';
import { report } from './feedback.js';
import { html } from './html.js';
import { PageHead } from './page.js';
import { parseProm, summarize } from './prom.js';

const POLL_MS = 5000;

/** Calls fn now and POLL_MS after each answer while the page is shown. */
function usePoll(fn) {
  useEffect(() => {
    let timer = null;
    let stopped = false;
    const tick = async () => {
      try {
        await fn();
      } catch (err) {
        report(err);
      } finally {
        if (!stopped) timer = setTimeout(tick, POLL_MS);
      }
    };
    tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, []);
}

const ms = (v) => (v === null || v === undefined ? '–' : `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`);
const loading = html`<p class="muted">Loading…</p>`;

function Checker({ c }) {
  const nodes = Array.isArray(c.nodes) ? c.nodes : [];
  const cls = (s) => (s === 'healthy' ? 'good' : s === 'unhealthy' ? 'bad' : 'warn');
  return html`<section class="card" aria-label=${`checker ${c.name}`}>
    <h2>${c.name}<span class="muted"> (${c.type})</span></h2>
    <table>
      <thead><tr>${['Node', 'Host', 'Status', 'Success', 'HTTP failures', 'TCP failures', 'Timeouts'].map((t) => html`<th scope="col">${t}</th>`)}</tr></thead>
      <tbody>${nodes.map((n) => html`<tr>
        <td>${`${n.ip}:${n.port}`}</td><td>${n.hostname ?? ''}</td>
        <td><span class=${`pill ${cls(n.status)}`}>${n.status}</span></td>
        ${['success', 'http_failure', 'tcp_failure', 'timeout_failure'].map((k) => html`<td>${String(n.counter?.[k] ?? 0)}</td>`)}
      </tr>`)}</tbody>
    </table>
  </section>`;
}

export function HealthPage() {
  const [r, setR] = useState(null);
  usePoll(async () => setR(await uiApi('health')));
  let body = loading;
  if (r !== null && !r.ok) body = html`<p class="notice">Health data unavailable: ${errorText(r)}</p>`;
  else if (r !== null) {
    const checkers = Array.isArray(r.body) ? r.body : [];
    body = checkers.length === 0
      ? html`<p class="muted">No active health checks are configured (add \`checks\` to an upstream).</p>`
      : checkers.map((c) => html`<${Checker} key=${c.name} c=${c} />`);
  }
  return html`<${PageHead} title="Upstream health" /><div aria-live="polite">${body}</div>`;
}

export function TrafficPage() {
  const [view, setView] = useState(null);
  const prev = useRef(null);
  usePoll(async () => {
    const r = await uiApi('metrics');
    if (!r.ok) return setView({ error: errorText(r) });
    const s = summarize(parseProm(r.text));
    const now = Date.now();
    const p = prev.current;
    const rate = p && s.requests >= p.requests ? ((s.requests - p.requests) * 1000) / (now - p.at) : null;
    prev.current = { requests: s.requests, at: now };
    setView({ s, rate });
  });
  let body = loading;
  if (view?.error !== undefined) body = html`<p class="notice">Metrics unavailable: ${view.error}</p>`;
  else if (view !== null && !view.s.known) {
    body = html`<p class="notice">The exporter answered ${view.s.families} metric families, none of them HTTP request metrics yet.</p>`;
  } else if (view !== null) {
    const { s, rate } = view;
    body = html`<div class="stats">
        <div class="stat"><span class="k">Requests/s</span><span class="v" id="rps">${rate === null ? '…' : rate.toFixed(1)}</span></div>
        <div class="stat"><span class="k">Requests</span><span class="v">${String(s.requests)}</span></div>
        ${Object.entries(s.classes).map(([k, v]) => html`<div class=${`stat c${k[0]}`}><span class="k">${k}</span><span class="v">${String(v)}</span></div>`)}
      </div>
      <h2>Latency per route</h2>
      ${s.latency.length === 0 ? html`<p class="muted">No latency samples yet.</p>` : html`<table>
        <thead><tr>${['Route', 'Requests', 'p50', 'p99'].map((t) => html`<th scope="col">${t}</th>`)}</tr></thead>
        <tbody>${s.latency.map((l) => html`<tr><td>${l.route || '(no route)'}</td><td>${String(l.count)}</td><td>${ms(l.p50)}</td><td>${ms(l.p99)}</td></tr>`)}</tbody>
      </table>`}`;
  }
  return html`<${PageHead} title="Traffic" /><div>${body}</div>`;
}

export function ConfigPage() {
  const [r, setR] = useState(null);
  useEffect(() => {
    uiApi('config').then(setR, report);
  }, []);
  let body = loading;
  if (r !== null) {
    body = r.ok
      ? html`<pre class="code" tabindex="0" aria-label="configuration">${JSON.stringify(r.body, null, 2)}</pre>`
      : html`<p class="notice">${errorText(r)}</p>`;
  }
  return html`<${PageHead} title="Effective config.yaml" /><p class="muted">Read-only; defaults applied; secrets redacted.</p><div>${body}</div>`;
}
