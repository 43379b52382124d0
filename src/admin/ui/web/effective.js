// The effective configuration of one route as the data plane runs it: the route's plugins merged over its
// plugin_config's and its service's (route > plugin_config > service, as APISIX merges them), the upstream it
// resolves to, and the global rules that run before it.
import { useEffect, useState } from 'preact/hooks';
import { api, errorText } from './api.js';
import { report } from './feedback.js';
import { html } from './html.js';
import { PageHead } from './page.js';

async function value(path) {
  const r = await api('GET', path);
  return r.ok ? r.body?.value ?? null : null;
}

async function load(id) {
  const r = await api('GET', `/routes/${encodeURIComponent(id)}`);
  if (!r.ok) return { error: errorText(r) };
  const route = r.body.value;
  const service = route.service_id !== undefined ? await value(`/services/${encodeURIComponent(route.service_id)}`) : null;
  const pc = route.plugin_config_id !== undefined ? await value(`/plugin_configs/${encodeURIComponent(route.plugin_config_id)}`) : null;
  const globals = await api('GET', '/global_rules');
  const merged = {};
  const from = {};
  for (const [src, obj] of [['service', service], ['plugin_config', pc], ['route', route]]) {
    for (const [name, conf] of Object.entries(obj?.plugins ?? {})) {
      merged[name] = conf;
      from[name] = src;
    }
  }
  const upstreamId = route.upstream_id ?? (route.upstream ? undefined : service?.upstream_id);
  const upstream = route.upstream ?? (upstreamId !== undefined ? await value(`/upstreams/${encodeURIComponent(upstreamId)}`) : service?.upstream ?? null);
  const effective = { ...(service ? { hosts: service.hosts } : {}), ...route, plugins: merged, upstream };
  delete effective.upstream_id;
  return { merged, from, globals: globals.body?.list ?? [], effective };
}

export function EffectivePage({ id }) {
  const [d, setD] = useState(null);
  useEffect(() => {
    load(id).then(setD, report);
  }, []);
  if (d === null) return html`<${PageHead} title=${`Effective route ${id}`} /><p class="muted">Loading…</p>`;
  if (d.error !== undefined) return html`<${PageHead} title=${`Route ${id}`} /><p class="error" role="alert">${d.error}</p>`;
  const names = Object.keys(d.merged);
  return html`
    <${PageHead} title=${`Effective route ${id}`}><a href=${`#/routes/edit/${encodeURIComponent(id)}`} class="btn">Open route</a><//>
    <h2>Plugins</h2>
    ${names.length === 0 ? html`<p class="muted">No plugins.</p>` : html`<table>
      <thead><tr><th scope="col">Plugin</th><th scope="col">From</th></tr></thead>
      <tbody>${names.map((n) => html`<tr><td>${n}</td><td>${d.from[n]}</td></tr>`)}</tbody>
    </table>`}
    <h2>Global rules (run first)</h2>
    ${d.globals.length === 0 ? html`<p class="muted">None.</p>`
      : html`<ul>${d.globals.map((g) => html`<li>${`${g.value.id}: ${Object.keys(g.value.plugins ?? {}).join(', ')}`}</li>`)}</ul>`}
    <h2>Merged object</h2>
    <pre class="code" tabindex="0">${JSON.stringify(d.effective, null, 2)}</pre>`;
}
