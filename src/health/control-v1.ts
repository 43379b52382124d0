// The Control API's state endpoints (APISIX apisix/control/v1.lua), beside the health ones of control-api.ts:
//   GET /v1/schema                       {main: core schemas, plugins, stream_plugins} of the enabled plugins
//   GET /v1/routes, /v1/route/<id>       snapshot entries {key, value, createdIndex, modifiedIndex, has_domain,
//   GET /v1/services, /v1/service/<id>    orig_modifiedIndex (routes)}; hash-form nodes shown as the array
//   GET /v1/upstreams, /v1/upstream/<id>  [{host, port, weight}] APISIX's data plane turns them into
//   GET /v1/plugin_metadatas, /v1/plugin_metadata/<plugin>   metadata values of the enabled HTTP plugins
//   PUT /v1/plugins/reload               re-reads config.yaml's plugin lists (the SIGHUP reload), answers "done"
//   GET /v1/discovery/<type>/dump        what a discovery provider resolved (control-discovery.ts)
// Not served: POST /v1/gc. APISIX runs a full Lua GC; Node exposes no GC trigger without --expose-gc, and V8
// collects on its own, so a 200 that did nothing would be a fake.
// /v1/discovery/<type>/show_dump_file is APISIX consul's view of its dump file; no provider here writes one.
//
// Where the data comes from: `snapshot()` is the validated snapshot the data plane runs. In a single process
// that is the RuntimeManager's; with workers the control server runs in the primary, whose SnapshotFeed builds
// from the same store with the same plugin set, so it equals every worker's once they have caught up.
import type { Json, JsonObject, Kind } from '../config/resources.ts';
import type { Snapshot, SnapshotItem } from '../config/snapshot.ts';
import type { PluginDef } from '../plugin/plugin.ts';
import type { PluginRegistry } from '../plugin/registry.ts';
import { coreSchema, injectMeta } from '../schema/validator.ts';
import { HASH_KEY_SCHEMAS } from '../schema/upstream.ts';
import { splitHostPort } from '../upstream/endpoints.ts';
import { notFound, type ControlReply, type ControlServer } from './control-api.ts';
import net from 'node:net';

export interface ControlV1Deps {
  /** The data plane's current snapshot; null before the first one. */
  snapshot(): Snapshot | null;
  readonly plugins: PluginRegistry;
  /** Starts a plugin reload from config.yaml; may finish after the reply, as APISIX's event does. */
  reloadPlugins(): void;
}

/** APISIX's `main` keys (core.schema.*) that name resource kinds here. */
const MAIN_KINDS = ['consumer', 'consumer_group', 'global_rule', 'plugin_config', 'proto', 'route', 'service', 'ssl', 'stream_route', 'upstream'];

function schemaDump(plugins: PluginRegistry): JsonObject {
  const main: JsonObject = {};
  for (const name of MAIN_KINDS) main[name] = coreSchema(name) ?? {};
  main.plugins = coreSchema('plugins') ?? {};
  main.upstream_hash_header_schema = HASH_KEY_SCHEMAS.header!;
  main.upstream_hash_vars_schema = HASH_KEY_SCHEMAS.vars!;
  return { main, plugins: describeAll(plugins.all('http')), stream_plugins: describeAll(plugins.all('stream')) };
}

function describeAll(defs: readonly PluginDef[]): JsonObject {
  const out: JsonObject = {};
  for (const def of defs) {
    // APISIX plugins declare `version = 0.1`, a number.
    const v = Number(def.version);
    const d: JsonObject = { version: Number.isFinite(v) ? v : def.version, priority: def.priority, schema: injectMeta(def.schema) };
    if (def.consumerSchema) d.consumer_schema = def.consumerSchema;
    if (def.metadataSchema) d.metadata_schema = def.metadataSchema;
    if (def.type) d.type = def.type;
    if (def.scope) d.scope = def.scope;
    out[def.name] = d;
  }
  return out;
}

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * An upstream as APISIX's data plane holds it (upstream.lua filter_upstream): hash-form nodes become an array,
 * and whether any node is a domain name. `up` is frozen: a changed copy is returned.
 */
function dataPlaneUpstream(up: JsonObject): { value: JsonObject; hasDomain: boolean } {
  const nodes = up.nodes;
  let hasDomain = false;
  if (Array.isArray(nodes)) {
    for (const n of nodes) if (isObject(n) && typeof n.host === 'string' && net.isIP(n.host.replace(/^\[|\]$/g, '')) === 0) hasDomain = true;
    return { value: up, hasDomain };
  }
  if (!isObject(nodes)) return { value: up, hasDomain };
  const list: Json[] = [];
  for (const [addr, weight] of Object.entries(nodes)) {
    const { host, port } = splitHostPort(addr);
    if (net.isIP(host) === 0) hasDomain = true;
    list.push(port === null ? { host, weight } : { host, port, weight });
  }
  return { value: { ...up, nodes: list }, hasDomain };
}

function entry(kind: Kind, it: SnapshotItem): JsonObject {
  let value = it.value;
  let hasDomain = false;
  if (kind === 'upstreams') ({ value, hasDomain } = dataPlaneUpstream(value));
  else if (isObject(value.upstream)) {
    const up = dataPlaneUpstream(value.upstream);
    if (up.value !== value.upstream) value = { ...value, upstream: up.value };
    hasDomain = up.hasDomain;
  }
  const out: JsonObject = {
    key: it.item.key,
    value,
    createdIndex: it.item.createdIndex,
    modifiedIndex: it.item.modifiedIndex,
    has_domain: hasDomain,
  };
  if (kind === 'routes') out.orig_modifiedIndex = it.item.modifiedIndex;
  return out;
}

/** `/v1/<plural>` (all entries) and `/v1/<singular>/<id>` (one, else 404 `<singular>[<id>] not found`). */
function addDump(server: ControlServer, deps: ControlV1Deps, kind: Kind, singular: string): void {
  server.route(`/v1/${kind}`, (rest) => {
    if (rest !== '') return notFound();
    const snap = deps.snapshot();
    return { status: 200, body: snap === null ? [] : snap.list(kind).map((it) => entry(kind, it)) };
  });
  server.route(`/v1/${singular}`, (rest) => {
    const id = idOf(rest);
    if (id === null) return notFound();
    const it = deps.snapshot()?.get(kind, id);
    return it === undefined ? notFound(`${singular}[${id}] not found`) : { status: 200, body: entry(kind, it) };
  });
}

/** The id in `/<id>`, or null for any other shape. */
function idOf(rest: string): string | null {
  if (rest.length < 2 || rest.indexOf('/', 1) >= 0) return null;
  try {
    return decodeURIComponent(rest.slice(1));
  } catch {
    return null;
  }
}

export function addV1Routes(server: ControlServer, deps: ControlV1Deps): void {
  server.route('/v1/schema', (rest) => (rest === '' ? { status: 200, body: schemaDump(deps.plugins) } : notFound()));
  addDump(server, deps, 'routes', 'route');
  addDump(server, deps, 'services', 'service');
  addDump(server, deps, 'upstreams', 'upstream');

  // APISIX lists the metadata of the enabled plugins in config.yaml order; here in priority order.
  server.route('/v1/plugin_metadatas', (rest) => {
    if (rest !== '') return notFound();
    const snap = deps.snapshot();
    const out: JsonObject[] = [];
    if (snap !== null) {
      for (const def of deps.plugins.all('http')) {
        const it = snap.get('plugin_metadata', def.name);
        if (it !== undefined) out.push(metadataValue(it));
      }
    }
    return { status: 200, body: out };
  });
  server.route('/v1/plugin_metadata', (rest) => {
    const name = idOf(rest);
    if (name === null) return notFound();
    const it = deps.snapshot()?.get('plugin_metadata', name);
    return it === undefined ? notFound(`plugin metadata[${name}] not found`) : { status: 200, body: metadataValue(it) };
  });

  server.put('/v1/plugins/reload', (): ControlReply => {
    deps.reloadPlugins();
    return { status: 200, body: 'done' };
  });
}

/** APISIX's metadata value carries its plugin name as `id`. */
function metadataValue(it: SnapshotItem): JsonObject {
  return it.value.id === it.item.id ? it.value : { ...it.value, id: it.item.id };
}
