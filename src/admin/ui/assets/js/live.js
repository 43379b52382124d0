// Live views: upstream node health (Control API /v1/healthcheck via the admin server), a traffic overview from
// the Prometheus exporter, and the effective config.yaml (secrets redacted). Each polls while shown and says
// plainly when its source is not available.
import { errorText, uiApi } from './api.js';
import { h, replace } from './dom.js';
import { parseProm, summarize } from './prom.js';

const POLL_MS = 5000;

function poller(fn) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    try {
      await fn();
    } finally {
      if (!stopped) timer = setTimeout(tick, POLL_MS);
    }
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

const ms = (v) => (v === null || v === undefined ? '–' : `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`);

export function healthPage(main) {
  const body = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  replace(main, h('div', { class: 'page-head' }, h('h1', null, 'Upstream health')), body);
  return poller(async () => {
    const r = await uiApi('health');
    if (!r.ok) return replace(body, h('p', { class: 'notice' }, `Health data unavailable: ${errorText(r)}`));
    const checkers = Array.isArray(r.body) ? r.body : [];
    if (checkers.length === 0) return replace(body, h('p', { class: 'muted' }, 'No active health checks are configured (add `checks` to an upstream).'));
    replace(body, checkers.map((c) => {
      const nodes = Array.isArray(c.nodes) ? c.nodes : [];
      return h('section', { class: 'card', 'aria-label': `checker ${c.name}` },
        h('h2', null, c.name, h('span', { class: 'muted' }, ` (${c.type})`)),
        h('table', null,
          h('thead', null, h('tr', null, ['Node', 'Host', 'Status', 'Success', 'HTTP failures', 'TCP failures', 'Timeouts'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', null, nodes.map((n) => h('tr', null,
            h('td', null, `${n.ip}:${n.port}`), h('td', null, n.hostname ?? ''),
            h('td', null, h('span', { class: `pill ${n.status === 'healthy' ? 'good' : n.status === 'unhealthy' ? 'bad' : 'warn'}` }, n.status)),
            ['success', 'http_failure', 'tcp_failure', 'timeout_failure'].map((k) => h('td', null, String(n.counter?.[k] ?? 0))))))));
    }));
  });
}

export function trafficPage(main) {
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  replace(main, h('div', { class: 'page-head' }, h('h1', null, 'Traffic')), body);
  let prev = null;
  return poller(async () => {
    const r = await uiApi('metrics');
    if (!r.ok) return replace(body, h('p', { class: 'notice' }, `Metrics unavailable: ${errorText(r)}`));
    const s = summarize(parseProm(r.text));
    const now = Date.now();
    const rate = prev && s.requests >= prev.requests ? ((s.requests - prev.requests) * 1000) / (now - prev.at) : null;
    prev = { requests: s.requests, at: now };
    if (!s.known) return replace(body, h('p', { class: 'notice' }, `The exporter answered ${s.families} metric families, none of them HTTP request metrics yet.`));
    replace(body,
      h('div', { class: 'stats' },
        h('div', { class: 'stat' }, h('span', { class: 'k' }, 'Requests/s'), h('span', { class: 'v', id: 'rps' }, rate === null ? '…' : rate.toFixed(1))),
        h('div', { class: 'stat' }, h('span', { class: 'k' }, 'Requests'), h('span', { class: 'v' }, String(s.requests))),
        Object.entries(s.classes).map(([k, v]) => h('div', { class: `stat c${k[0]}` }, h('span', { class: 'k' }, k), h('span', { class: 'v' }, String(v))))),
      h('h2', null, 'Latency per route'),
      s.latency.length === 0 ? h('p', { class: 'muted' }, 'No latency samples yet.') : h('table', null,
        h('thead', null, h('tr', null, ['Route', 'Requests', 'p50', 'p99'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, s.latency.map((l) => h('tr', null, h('td', null, l.route || '(no route)'), h('td', null, String(l.count)), h('td', null, ms(l.p50)), h('td', null, ms(l.p99)))))));
  });
}

export async function configPage(main) {
  const body = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  replace(main, h('div', { class: 'page-head' }, h('h1', null, 'Effective config.yaml')),
    h('p', { class: 'muted' }, 'Read-only; defaults applied; secrets redacted.'), body);
  const r = await uiApi('config');
  if (!r.ok) return replace(body, h('p', { class: 'notice' }, errorText(r)));
  replace(body, h('pre', { class: 'code', tabindex: '0', 'aria-label': 'configuration' }, JSON.stringify(r.body, null, 2)));
}
