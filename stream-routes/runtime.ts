// Builds the stream runtime from a config snapshot: routes merged with their service (route fields win,
// service plugins fill the gaps), compiled stream plugin chains, the L4 router, upstream runtimes (reused
// across snapshots when unchanged). TLS listeners take their certificates from the shared certificate store
// (src/tls/store.ts TlsRuntimeBuilder, with apisix.ssl's defaults), as HTTPS does. APISIX's stream subsystem does not
// watch global_rules, so stream sessions run route/service plugins only. Plugin confs resolve `$env://` and
// `$secret://` references as HTTP's do (the chain, src/plugin/secret-refs.ts, with Vault values prefetched by the
// runtime manager); a changed secrets object rebuilds the runtime when a stream conf names a secret manager.
import { createHash } from 'node:crypto';
import type { JsonObject } from '../src/config/resources.ts';
import type { Snapshot } from '../src/config/snapshot.ts';
import type { Logger } from '../src/observability/logger.ts';
import { PluginChain } from '../src/plugin/chain.ts';
import { mergeRoutePlugins } from '../src/plugin/merge.ts';
import type { ConsumerDirectory, PluginDef, PluginEnv } from '../src/plugin/plugin.ts';
import type { PluginRegistry } from '../src/plugin/registry.ts';
import type { BalancerRegistry, HealthView } from '../src/upstream/balancer.ts';
import type { DnsCache } from '../src/upstream/dns.ts';
import type { UpstreamRuntime } from '../src/upstream/upstream.ts';
import { buildStreamRouter } from './router.ts';
import type { StreamRoute, StreamRuntime } from './types.ts';
import { StreamUpstreams } from './upstreams.ts';

export interface StreamRuntimeDeps {
  readonly plugins: PluginRegistry;
  readonly balancers: BalancerRegistry;
  readonly logger: Logger;
  /** Health state shared with HTTP upstreams: one view, or a view per upstream key. */
  readonly health?: HealthView | ((key: string, conf: JsonObject) => HealthView);
  /** config.yaml plugin_attr. */
  readonly attrs?: Record<string, Record<string, unknown>>;
  /** Resolver for hostname nodes; without it only IP nodes are used. */
  readonly dns?: DnsCache | null;
}

const NO_CONSUMERS: ConsumerDirectory = Object.freeze({
  find: () => undefined,
  withPlugin: () => [],
});

function asObj(v: unknown): JsonObject | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as JsonObject) : undefined;
}

function idOf(v: unknown): string | undefined {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
}

class Runtime implements StreamRuntime {
  readonly revision: number;
  /** Some route's plugin conf holds a `$secret://` reference: a changed secrets object rebuilds the runtime. */
  readonly secretRefs: boolean;
  readonly router: StreamRuntime['router'];
  readonly global = null;
  readonly upstreams: StreamUpstreams;
  readonly routes: readonly StreamRoute[];
  private readonly inline = new WeakMap<JsonObject, UpstreamRuntime | null>();
  private readonly subordinates = new Map<string, StreamRoute[]>();

  constructor(revision: number, routes: StreamRoute[], upstreams: StreamUpstreams) {
    this.revision = revision;
    this.routes = routes;
    this.router = buildStreamRouter(routes);
    this.upstreams = upstreams;
    this.secretRefs = routes.some((r) => r.chain.secretRefs);
    for (const r of routes) {
      const sup = asObj(r.value.protocol)?.superior_id;
      const id = idOf(sup);
      if (id === undefined) continue;
      let list = this.subordinates.get(id);
      if (list === undefined) this.subordinates.set(id, (list = []));
      list.push(r);
    }
  }

  subordinatesOf(routeId: string): readonly StreamRoute[] {
    return this.subordinates.get(routeId) ?? [];
  }

  resolveUpstream(ref: string | JsonObject): UpstreamRuntime | null {
    if (typeof ref === 'string') return this.upstreams.byId(ref);
    // Callers pass the same conf object per session (traffic-split rule), so the JSON key is computed once.
    let rt = this.inline.get(ref);
    if (rt === undefined) {
      rt = this.upstreams.get(`inline/${JSON.stringify(ref)}`, ref);
      this.inline.set(ref, rt);
    }
    return rt;
  }

  destroy(): void {
    for (const r of this.routes) r.chain.destroy();
  }
}

/** A short stable digest of a plugin conf: counters (limit-conn) survive snapshots while the conf is unchanged. */
function confDigest(conf: JsonObject): string {
  return createHash('sha256').update(JSON.stringify(conf)).digest('base64url').slice(0, 16);
}

export function buildStreamRuntime(snapshot: Snapshot, previous: StreamRuntime | null, deps: StreamRuntimeDeps): StreamRuntime {
  const log = deps.logger.child({ module: 'stream-runtime' });
  const prev = previous instanceof Runtime ? previous : null;
  const metadata = new Map<string, JsonObject>();
  for (const m of snapshot.list('plugin_metadata')) metadata.set(m.item.id, m.value);
  const envFor =
    (scope: string) =>
    (def: PluginDef, conf: JsonObject): PluginEnv => ({
      logger: log.child({ plugin: def.name, scope }),
      metadata: metadata.get(def.name),
      attr: deps.attrs?.[def.name] as JsonObject | undefined,
      scopeKey: `${scope}#${def.name}#${confDigest(conf)}`,
      consumers: NO_CONSUMERS,
      secrets: snapshot,
    });

  const upstreams = new StreamUpstreams(snapshot, prev?.upstreams ?? null, deps);
  const routes: StreamRoute[] = [];
  for (const { item, value } of snapshot.list('stream_routes')) {
    const serviceId = idOf(value.service_id);
    const svc = serviceId !== undefined ? snapshot.get('services', serviceId)?.value : undefined;
    let broken: string | null = null;
    if (serviceId !== undefined && svc === undefined) broken = `missing service ${serviceId}`;
    const merged = mergeRoutePlugins({ service: asObj(svc?.plugins), route: asObj(value.plugins) });
    const scope = `stream_route:${item.id}`;
    const chain = PluginChain.compile(merged, deps.plugins, 'stream', envFor(scope), (name, msg) =>
      log.warn({ route: item.id, plugin: name, error: msg }, 'stream plugin skipped'),
    );
    let upstream: UpstreamRuntime | null = null;
    const inline = asObj(value.upstream);
    const upId = idOf(value.upstream_id);
    let upKey: string | undefined;
    if (inline !== undefined) upstream = upstreams.get((upKey = `stream_routes/${item.id}`), inline);
    else if (upId !== undefined) {
      upstream = upstreams.byId(upId);
      upKey = `upstreams/${upId}`;
      if (upstream === null && broken === null && !upstreams.errors.has(upKey)) broken = `missing upstream ${upId}`;
    } else if (svc !== undefined) {
      const sInline = asObj(svc.upstream);
      const sId = idOf(svc.upstream_id);
      if (sInline !== undefined) upstream = upstreams.get((upKey = `services/${serviceId}`), sInline);
      else if (sId !== undefined) upstream = upstreams.byId(sId);
      if (sId !== undefined) upKey = `upstreams/${sId}`;
    }
    const upErr = upKey !== undefined ? upstreams.errors.get(upKey) : undefined;
    if (upErr !== undefined) {
      log.warn({ route: item.id, upstream: upKey, error: upErr }, 'stream route upstream invalid');
      if (broken === null) broken = `invalid upstream: ${upErr}`;
    }
    routes.push({
      id: item.id,
      value,
      name: typeof value.name === 'string' ? value.name : undefined,
      serviceId,
      upstream,
      chain,
      broken,
    });
  }
  return new Runtime(snapshot.revision, routes, upstreams);
}

/** The kinds a stream runtime is built from besides secrets. */
const BUILT_FROM = ['upstreams', 'services', 'stream_routes', 'plugin_metadata'] as const;

/** RuntimeBuilder for the RuntimeManager (src/runtime/manager.ts). */
export class StreamRuntimeBuilder {
  readonly name = 'stream';
  /** What a stream runtime is built from: the RuntimeManager skips the build when none of these changed. */
  readonly kinds = [...BUILT_FROM, 'secrets'] as const;
  private readonly deps: StreamRuntimeDeps;
  private latest: Runtime | null = null;
  /** The snapshot `latest` was built from. */
  private latestFrom: Snapshot | null = null;

  constructor(deps: StreamRuntimeDeps) {
    this.deps = deps;
  }

  build(snapshot: Snapshot, previous: StreamRuntime | null): StreamRuntime {
    // A change of secrets alone leaves a runtime none of whose confs names a secret manager as it is ($env://
    // values are read once, when a conf is compiled, as HTTP's). Returning it keeps the manager from swapping.
    const latest = this.latest;
    if (latest !== null && previous === latest && !latest.secretRefs && this.latestFrom !== null) {
      const from = this.latestFrom;
      if (BUILT_FROM.every((kind) => snapshot.sameKind(kind, from))) return latest;
    }
    const rt = buildStreamRuntime(snapshot, previous, this.deps) as Runtime;
    this.latest = rt;
    this.latestFrom = snapshot;
    return rt;
  }

  /** Destroys the plugin instances of a replaced runtime and stops DNS refreshes of upstreams no longer used. */
  retire(runtime: StreamRuntime): void {
    if (!(runtime instanceof Runtime) || runtime === this.latest) return;
    runtime.destroy();
    runtime.upstreams.closeUnused(this.latest?.upstreams ?? null);
  }

  /** Shutdown: stops every upstream's DNS refreshes. */
  close(): void {
    this.latest?.upstreams.closeUnused(null);
  }
}
