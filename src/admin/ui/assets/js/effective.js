// The effective configuration of one route as the data plane runs it: the route's plugins merged over its
// plugin_config's and its service's (route > plugin_config > service, as APISIX merges them), the upstream it
// resolves to, and the global rules that run before it.
import { api, errorText } from './api.js';
import { h, replace } from './dom.js';

async function value(path) {
  const r = await api('GET', path);
  return r.ok ? r.body?.value ?? null : null;
}

export async function effectivePage(main, id) {
  const r = await api('GET', `/routes/${encodeURIComponent(id)}`);
  if (!r.ok) return replace(main, h('h1', null, `Route ${id}`), h('p', { class: 'error', role: 'alert' }, errorText(r)));
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
  replace(main,
    h('div', { class: 'page-head' }, h('h1', null, `Effective route ${id}`), h('a', { href: `#/routes/edit/${encodeURIComponent(id)}`, class: 'btn' }, 'Open route')),
    h('h2', null, 'Plugins'),
    Object.keys(merged).length === 0 ? h('p', { class: 'muted' }, 'No plugins.') : h('table', null,
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Plugin'), h('th', { scope: 'col' }, 'From'))),
      h('tbody', null, Object.keys(merged).map((n) => h('tr', null, h('td', null, n), h('td', null, from[n]))))),
    h('h2', null, 'Global rules (run first)'),
    (globals.body?.list ?? []).length === 0 ? h('p', { class: 'muted' }, 'None.')
      : h('ul', null, globals.body.list.map((g) => h('li', null, `${g.value.id}: ${Object.keys(g.value.plugins ?? {}).join(', ')}`))),
    h('h2', null, 'Merged object'),
    h('pre', { class: 'code', tabindex: '0' }, JSON.stringify(effective, null, 2)));
}
