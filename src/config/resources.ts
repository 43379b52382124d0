// Resource kinds and their etcd layout, shared by both config backends, the Admin API and the snapshot.
// Values are APISIX-format JSON objects; their shape is enforced by src/schema, not by these types.

export const RESOURCE_KINDS = [
  'routes',
  'services',
  'upstreams',
  'consumers',
  'credentials',
  'consumer_groups',
  'ssls',
  'global_rules',
  'plugin_configs',
  'plugin_metadata',
  'stream_routes',
  'protos',
  'secrets',
] as const;

export type Kind = (typeof RESOURCE_KINDS)[number];

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

/**
 * One stored object. `id` is the key suffix below `<prefix>/<dir>/`:
 * plain ids for most kinds, `<username>/credentials/<cid>` for credentials (dir `consumers`),
 * `<manager>/<id>` for secrets.
 */
export interface StoredItem {
  readonly kind: Kind;
  readonly id: string;
  readonly key: string;
  readonly value: JsonObject;
  readonly createdIndex: number;
  readonly modifiedIndex: number;
}

/** The etcd directory of a kind (credentials live under consumers). */
export function kindDir(kind: Kind): string {
  return kind === 'credentials' ? 'consumers' : kind;
}

export function itemKey(prefix: string, kind: Kind, id: string): string {
  return `${prefix}/${kindDir(kind)}/${id}`;
}

/**
 * Maps a full key to (kind, id), or null for keys that hold no resource
 * (`<prefix>/gen_id`, `<prefix>/plugins`, `init_dir` placeholders, unknown dirs).
 */
export function parseKey(prefix: string, key: string): { kind: Kind; id: string } | null {
  if (!key.startsWith(prefix + '/')) return null;
  const rest = key.slice(prefix.length + 1);
  const slash = rest.indexOf('/');
  if (slash <= 0) return null;
  const dir = rest.slice(0, slash);
  const id = rest.slice(slash + 1);
  if (id === '' || id === 'init_dir' || id.endsWith('/')) return null;
  if (dir === 'consumers') {
    const parts = id.split('/');
    if (parts.length === 1) return { kind: 'consumers', id };
    if (parts.length === 3 && parts[1] === 'credentials' && parts[0] && parts[2]) return { kind: 'credentials', id };
    return null;
  }
  if (dir === 'secrets') {
    const parts = id.split('/');
    return parts.length === 2 && parts[0] && parts[1] ? { kind: 'secrets', id } : null;
  }
  if ((RESOURCE_KINDS as readonly string[]).includes(dir) && !id.includes('/')) return { kind: dir as Kind, id };
  return null;
}

/** Singular names used in APISIX error messages ("wrong route id", "can not delete this upstream"). */
export const KIND_SINGULAR: Record<Kind, string> = {
  routes: 'route',
  services: 'service',
  upstreams: 'upstream',
  consumers: 'consumer',
  credentials: 'credential',
  consumer_groups: 'consumer group',
  ssls: 'ssl',
  global_rules: 'global rule',
  plugin_configs: 'plugin config',
  plugin_metadata: 'plugin metadata',
  stream_routes: 'stream route',
  protos: 'proto',
  secrets: 'secret',
};
