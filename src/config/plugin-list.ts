// APISIX's cluster-wide plugin list: the etcd key `<prefix>/plugins`, a JSON array of `{name, stream?}`
// (schema_def.lua `plugins`). A node that runs the Admin API writes it on PUT /apisix/admin/plugins/reload, and
// at start replaces a stored list that differs from its own (admin/init.lua `sync_local_conf_to_etcd`); nodes
// without the Admin API (data planes, `enable_admin: false`) follow the key and run the plugins it names
// instead of their config.yaml lists (plugin.lua `init_plugins_syncer`).
import type { Logger } from '../observability/logger.ts';
import type { PluginRegistry } from '../plugin/registry.ts';

export interface PluginLists {
  readonly http: readonly string[];
  readonly stream: readonly string[];
}

/** Where the list lives (EtcdStore). */
export interface PluginListKey {
  /** The raw stored value, null while absent. */
  readonly pluginList: string | null;
  putPluginList(raw: string): Promise<void>;
  on(event: 'plugins', listener: (raw: string | null) => void): unknown;
}

/** The enabled plugins of `registry`, as written to the key. */
export function enabledLists(registry: PluginRegistry): PluginLists {
  return { http: registry.all('http').map((d) => d.name), stream: registry.all('stream').map((d) => d.name) };
}

export function encodePluginList(lists: PluginLists): string {
  return JSON.stringify([...lists.http.map((name) => ({ name })), ...lists.stream.map((name) => ({ name, stream: true }))]);
}

export function decodePluginList(raw: string): PluginLists | { error: string } {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (err) {
    return { error: (err as Error).message };
  }
  if (!Array.isArray(v)) return { error: 'not an array' };
  const http: string[] = [];
  const stream: string[] = [];
  for (const [i, e] of v.entries()) {
    const entry = e as { name?: unknown; stream?: unknown } | null;
    if (entry === null || typeof entry !== 'object' || typeof entry.name !== 'string' || entry.name === '') {
      return { error: `[${i}].name: must be a non-empty string` };
    }
    if (entry.stream !== undefined && typeof entry.stream !== 'boolean') return { error: `[${i}].stream: must be a boolean` };
    (entry.stream === true ? stream : http).push(entry.name);
  }
  return { http, stream };
}

/** Equal as sets per subsystem (APISIX compares the stored and the local list by name, not by order). */
export function sameLists(a: PluginLists, b: PluginLists): boolean {
  const eq = (x: readonly string[], y: readonly string[]) => {
    const sx = new Set(x);
    const sy = new Set(y);
    return sx.size === sy.size && [...sx].every((n) => sy.has(n));
  };
  return eq(a.http, b.http) && eq(a.stream, b.stream);
}

/**
 * Writes this node's enabled lists. 'set' always writes (the Admin API's reload); 'reset' writes only over a
 * stored list that differs (start): a node never creates the key by starting, so data planes keep their own
 * config.yaml lists until an operator reloads through the Admin API.
 */
export async function publishPluginList(key: PluginListKey, registry: PluginRegistry, mode: 'set' | 'reset', log: Logger): Promise<void> {
  const lists = enabledLists(registry);
  if (mode === 'reset') {
    const stored = key.pluginList === null ? null : decodePluginList(key.pluginList);
    if (stored === null || ('http' in stored && sameLists(stored, lists))) return;
  }
  await key.putPluginList(encodePluginList(lists));
  log.info({ http: lists.http.length, stream: lists.stream.length }, 'plugin list written to etcd');
}

/**
 * Follows the key: each valid stored list becomes the enabled set (then `refresh` rebuilds what it shapes). An
 * absent key leaves the config.yaml lists in force, an invalid one is logged and the running set kept.
 */
export function followPluginList(key: PluginListKey, apply: (lists: PluginLists) => string[], log: Logger): void {
  const onValue = (raw: string | null): void => {
    if (raw === null) return;
    const lists = decodePluginList(raw);
    if ('error' in lists) {
      log.error({ error: lists.error }, 'etcd plugin list is invalid; the running plugins are kept');
      return;
    }
    const missing = apply(lists);
    if (missing.length > 0) log.warn({ plugins: missing }, 'plugins listed in etcd are not available; skipped');
    log.info({ http: lists.http.length, stream: lists.stream.length }, 'plugin list loaded from etcd');
  };
  key.on('plugins', onValue);
  onValue(key.pluginList);
}
