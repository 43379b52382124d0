// The resource kinds the dashboard manages: URL name, labels, list columns, how ids are chosen and which
// plugin schema variant their plugin forms use.
import { brief } from './util.js';

const plugins = (v) => Object.keys(v.plugins ?? {}).join(', ');
const nodes = (n) => {
  if (Array.isArray(n)) return n.map((x) => `${x.host}:${x.port ?? ''}`).join(', ');
  return n && typeof n === 'object' ? Object.keys(n).join(', ') : '';
};

/**
 * id: 'optional' (POST when empty), 'required' (PUT only), 'body' (consumers: the username in the body).
 * search: the Admin API list filters offered (name/uri regex, label key).
 */
export const KINDS = [
  {
    name: 'routes', title: 'Routes', singular: 'route', id: 'optional', search: ['name', 'uri', 'label'],
    columns: [
      ['Name', (v) => v.name], ['URI', (v) => v.uri ?? (v.uris ?? []).join(', ')],
      ['Methods', (v) => (v.methods ?? []).join(', ')], ['Host', (v) => v.host ?? (v.hosts ?? []).join(', ')],
      ['Upstream', (v) => v.upstream_id ?? (v.upstream ? nodes(v.upstream.nodes) : v.service_id ? `service ${v.service_id}` : '')],
      ['Plugins', plugins], ['Status', (v) => (v.status === 0 ? 'disabled' : 'enabled')],
    ],
  },
  {
    name: 'services', title: 'Services', singular: 'service', id: 'optional', search: ['name', 'label'],
    columns: [['Name', (v) => v.name], ['Upstream', (v) => v.upstream_id ?? (v.upstream ? nodes(v.upstream.nodes) : '')], ['Hosts', (v) => (v.hosts ?? []).join(', ')], ['Plugins', plugins]],
  },
  {
    name: 'upstreams', title: 'Upstreams', singular: 'upstream', id: 'optional', search: ['name', 'label'], noPlugins: true,
    columns: [['Name', (v) => v.name], ['Type', (v) => v.type ?? 'roundrobin'], ['Nodes', (v) => nodes(v.nodes) || (v.service_name ? `${v.discovery_type}:${v.service_name}` : '')], ['Scheme', (v) => v.scheme ?? 'http']],
  },
  {
    name: 'consumers', title: 'Consumers', singular: 'consumer', id: 'body', idField: 'username', search: ['label'], pluginSchema: 'consumer',
    columns: [['Username', (v) => v.username], ['Group', (v) => v.group_id], ['Description', (v) => v.desc], ['Plugins', plugins]],
  },
  {
    name: 'consumer_groups', title: 'Consumer groups', singular: 'consumer group', id: 'required', search: ['label'],
    columns: [['Description', (v) => v.desc], ['Plugins', plugins]],
  },
  {
    name: 'ssls', title: 'SSLs', singular: 'SSL', id: 'optional', search: ['label'], noPlugins: true,
    columns: [['SNIs', (v) => (v.snis ?? (v.sni ? [v.sni] : [])).join(', ')], ['Type', (v) => v.type ?? 'server'], ['Status', (v) => (v.status === 0 ? 'disabled' : 'enabled')]],
  },
  {
    name: 'global_rules', title: 'Global rules', singular: 'global rule', id: 'required', search: [],
    columns: [['Plugins', plugins]],
  },
  {
    name: 'plugin_configs', title: 'Plugin configs', singular: 'plugin config', id: 'required', search: ['label'],
    columns: [['Name', (v) => v.name], ['Description', (v) => v.desc], ['Plugins', plugins]],
  },
  {
    name: 'plugin_metadata', title: 'Plugin metadata', singular: 'plugin metadata', id: 'required', search: [], noPlugins: true, metadata: true,
    columns: [['Plugin', (v) => v.id], ['Metadata', (v) => brief(Object.fromEntries(Object.entries(v).filter(([k]) => k !== 'id')))]],
  },
  {
    name: 'protos', title: 'Protos', singular: 'proto', id: 'optional', search: ['name', 'label'], noPlugins: true,
    columns: [['Name', (v) => v.name], ['Description', (v) => v.desc], ['Content', (v) => brief(v.content, 60)]],
  },
  {
    name: 'secrets', title: 'Secrets', singular: 'secret manager', id: 'required', idHint: '<manager>/<id>, e.g. vault/1', search: [], noPlugins: true,
    columns: [['Manager', (v) => String(v.id ?? '').split('/')[0]], ['URI', (v) => v.uri ?? v.endpoint_url], ['Prefix', (v) => v.prefix]],
  },
  {
    name: 'stream_routes', title: 'Stream routes', singular: 'stream route', id: 'optional', search: [], streamPlugins: true,
    columns: [['Server port', (v) => v.server_port], ['Remote addr', (v) => v.remote_addr], ['SNI', (v) => v.sni], ['Upstream', (v) => v.upstream_id ?? (v.upstream ? nodes(v.upstream.nodes) : '')], ['Plugins', plugins]],
  },
];

export const KIND_BY_NAME = new Map(KINDS.map((k) => [k.name, k]));

/** Fields the server manages; never sent back on save. */
export const SERVER_FIELDS = ['create_time', 'update_time'];
