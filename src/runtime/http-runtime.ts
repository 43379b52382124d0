// Builds the HTTP data-plane runtime from a snapshot: routes merged with their service and plugin_config,
// compiled plugin chains, the router, and upstream runtimes.
//
// Builds are incremental. Snapshot items are the same objects while unchanged, so a route whose own item,
// service, plugin_config and resolved upstream are the same as in the previous runtime (and whose chain has
// no plugin with changed plugin_metadata) keeps its HttpRoute payload, compiled chain and router entry; the
// router is updated with the routes that changed only. The global-rules chain is kept while global_rules
// and the metadata of its plugins are unchanged; the consumer directory is rebuilt only when consumers,
// credentials or consumer groups changed.
//
// Chain lifecycle: a chain is referenced by the runtime that built it and by every successor that reused
// it. retire(old, next) destroys the chains of `old` that `next` no longer references, once requests
// pinned to `old` had their grace period, so each chain is destroyed exactly once, after it left service.
// detach(old, next) is the same retirement in O(changes): the chains `next` dropped are listed when it is
// built, and the deferred retirement holds only them and the request-time caches, never a runtime or its
// snapshot (thousands of swaps within one grace period must not keep thousands of snapshots alive).
import { RESOURCE_KINDS, type JsonObject, type Kind } from '../config/resources.ts';
import type { Snapshot, SnapshotItem } from '../config/snapshot.ts';
import type { Logger } from '../observability/logger.ts';
import type { ConsumerRef } from '../plugin/context.ts';
import { PluginChain, type EnvFor } from '../plugin/chain.ts';
import { consumerPluginNames, mergeConsumerPlugins, mergeRoutePlugins } from '../plugin/merge.ts';
import type { PluginDef, PluginEnv } from '../plugin/plugin.ts';
import type { PluginRegistry } from '../plugin/registry.ts';
import { ChunkedMap } from '../router/chunked-map.ts';
import { Edit } from '../router/radix.ts';
import { buildRouter, type BuiltRouter, type RouteSpec } from '../router/router.ts';
import type { BalancerRegistry, HealthView } from '../upstream/balancer.ts';
import { Pools } from '../upstream/pools.ts';
import { UpstreamCache, UpstreamRuntime } from '../upstream/upstream.ts';
import { LiveConsumers, SnapshotConsumers, sameConsumers } from './consumers.ts';
import type { RuntimeBuilder } from './manager.ts';
import type { HttpRoute, HttpRuntime, TimeoutConf } from './types.ts';

export interface HttpRuntimeDeps {
  plugins: PluginRegistry;
  balancers: BalancerRegistry;
  attrs: Record<string, Record<string, unknown>>;
  logger: Logger;
  /**
   * The health view of one upstream (UpstreamCache's deps shape). Keys: `upstreams/<id>`, `services/<id>`,
   * `routes/<id>` for inline upstreams, `inline/<n>` for upstreams chosen at request time. Default: healthy.
   */
  health?: (key: string, conf: JsonObject) => HealthView;
  /** switchyard.upstream_http1_client (config default socket; undici when absent here, for builders made without a config). */
  upstreamClient?: 'undici' | 'socket';
}

/** Every kind but stream_routes. */
const HTTP_KINDS: readonly Kind[] = RESOURCE_KINDS.filter((k) => k !== 'stream_routes');

/** Bounds of the per-runtime caches filled by traffic. */
const MAX_INLINE_UPSTREAMS = 1000;
const MAX_CONSUMER_CHAINS = 100_000;

function asObj(v: unknown): JsonObject | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as JsonObject) : undefined;
}

function idOf(v: unknown): string | undefined {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
}

/** What a route's payload was built from; equal inputs (by identity) mean the payload can be reused. */
interface RouteState {
  readonly item: SnapshotItem;
  readonly service: SnapshotItem | undefined;
  readonly pluginConfig: SnapshotItem | undefined;
  readonly upstream: UpstreamRuntime | null;
  readonly spec: RouteSpec<HttpRoute>;
}

interface ConsumerChainEntry {
  readonly route: HttpRoute;
  readonly chain: PluginChain;
}

/** Per-build helpers a runtime keeps for request-time work (consumer chains, inline upstreams). */
interface RuntimeTools {
  readonly plugins: PluginRegistry;
  readonly withConsumer: (route: HttpRoute, merged: JsonObject, names: ReadonlySet<string>, username: string) => PluginChain;
  readonly inlineFactory: (key: string, conf: JsonObject) => UpstreamRuntime | null;
}

let runtimeSeq = 0;

class Runtime implements HttpRuntime {
  readonly seq = ++runtimeSeq;
  readonly revision: number;
  readonly snapshot: Snapshot;
  readonly router: BuiltRouter<HttpRoute>;
  readonly global: PluginChain | null;
  readonly routes: ChunkedMap<RouteState>;
  readonly consumers: SnapshotConsumers;
  readonly consumerChains: Map<string, ConsumerChainEntry>;
  private readonly upstreams: UpstreamCache;
  private readonly tools: RuntimeTools;
  /** Inline upstreams chosen at request time (traffic-split): by conf object, then by conf JSON. */
  private readonly inlineByConf = new WeakMap<JsonObject, UpstreamRuntime | null>();
  private readonly inline = new Map<string, UpstreamRuntime | null>();
  /** `seq` of the runtime this one was built from (0: none), and that runtime's chains this one no longer uses. */
  readonly base: number;
  readonly dropped: readonly PluginChain[];

  constructor(
    snapshot: Snapshot,
    router: BuiltRouter<HttpRoute>,
    global: PluginChain | null,
    routes: ChunkedMap<RouteState>,
    consumers: SnapshotConsumers,
    consumerChains: Map<string, ConsumerChainEntry>,
    upstreams: UpstreamCache,
    tools: RuntimeTools,
    base: number,
    dropped: readonly PluginChain[],
  ) {
    this.revision = snapshot.revision;
    this.snapshot = snapshot;
    this.router = router;
    this.global = global;
    this.routes = routes;
    this.consumers = consumers;
    this.consumerChains = consumerChains;
    this.upstreams = upstreams;
    this.tools = tools;
    this.base = base;
    this.dropped = dropped;
  }

  resolveUpstream(ref: string | JsonObject): UpstreamRuntime | null {
    if (typeof ref === 'string') return this.upstreams.get(`upstreams/${ref}`) ?? null;
    let u = this.inlineByConf.get(ref);
    if (u !== undefined) return u;
    const key = JSON.stringify(ref);
    u = this.inline.get(key);
    if (u === undefined) {
      u = this.tools.inlineFactory(`inline/${this.inline.size}`, ref);
      if (this.inline.size < MAX_INLINE_UPSTREAMS) this.inline.set(key, u);
      else u?.close();
    }
    this.inlineByConf.set(ref, u);
    return u;
  }

  consumerChain(route: HttpRoute, consumer: ConsumerRef): PluginChain {
    const key = `${route.id}\0${consumer.username}\0${consumer.credentialId ?? ''}`;
    const hit = this.consumerChains.get(key);
    if (hit !== undefined && hit.route === route) return hit.chain;
    const own = this.consumers.get(consumer.username) ?? consumer;
    const groupId = own.group_id;
    const group = groupId !== undefined ? this.snapshot.get('consumer_groups', groupId) : undefined;
    const groupPlugins = withoutAuth(asObj(group?.value.plugins), this.tools.plugins);
    const consumerPlugins = withoutAuth(asObj(own.plugins), this.tools.plugins);
    let chain: PluginChain;
    if (groupPlugins === undefined && consumerPlugins === undefined) chain = route.chain;
    else {
      const merged = mergeConsumerPlugins(route.plugins, groupPlugins, consumerPlugins);
      chain = this.tools.withConsumer(route, merged, consumerPluginNames(groupPlugins, consumerPlugins), own.username);
    }
    // Bounded: one entry per (route, consumer) pair that actually sent traffic. Past the bound a chain is
    // built per request and left to the garbage collector (it owns only consumer-contributed instances).
    if (this.consumerChains.size < MAX_CONSUMER_CHAINS) this.consumerChains.set(key, { route, chain });
    return chain;
  }

  /** Every chain this runtime references. */
  chains(): Set<PluginChain> {
    const out = new Set<PluginChain>();
    if (this.global !== null) out.add(this.global);
    for (const s of this.routes.values()) out.add(s.spec.payload.chain);
    for (const e of this.consumerChains.values()) out.add(e.chain);
    return out;
  }

  /** Destroys what this runtime references and `keep` does not; closes its request-time upstreams. */
  release(keep: Runtime | null): void {
    const live = keep?.chains();
    for (const c of this.chains()) if (live === undefined || !live.has(c)) c.destroy();
    for (const u of this.inline.values()) u?.close();
  }

  /**
   * The retirement of this runtime replaced by `next`: destroys `dropped` (its route and global chains `next` does not use),
   * the consumer chains only this runtime cached (filled until its last request ends) and its request-time
   * upstreams. Holds the caches and the dropped list only.
   */
  detach(next: Runtime, dropped: readonly PluginChain[]): () => void {
    const own = this.consumerChains;
    const kept = next.consumerChains;
    const inline = this.inline;
    return () => {
      for (const c of dropped) c.destroy();
      // A consumer chain equal to its route's chain is the route's; route chains are covered by `dropped`.
      for (const [key, e] of own) if (e.chain !== e.route.chain && kept.get(key)?.chain !== e.chain) e.chain.destroy();
      for (const u of inline.values()) u?.close();
    };
  }
}

/** Auth plugins of a consumer identify it; they are not re-run after identification (APISIX skips them). */
function withoutAuth(plugins: JsonObject | undefined, registry: PluginRegistry): JsonObject | undefined {
  if (plugins === undefined) return plugins;
  let out: JsonObject | undefined;
  for (const name in plugins) {
    if (registry.known(name)?.type === 'auth') continue;
    (out ??= {})[name] = plugins[name]!;
  }
  return out;
}

/** Names of plugins whose plugin_metadata differs between the snapshots (null `prev`: every plugin). */
/** Plugins whose instances read a resource kind besides their conf: rebuilt when that kind changes. */
const PLUGINS_READING: ReadonlyMap<Kind, readonly string[]> = new Map([['protos', ['grpc-transcode']]]);

/**
 * Names of plugins whose instances must be rebuilt: their plugin_metadata changed, or a resource kind they
 * read (protos for grpc-transcode: APISIX reads the proto per request, so an update applies at once), plus
 * SECRETS_CHANGED when the secrets resource changed.
 */
function changedMetadata(snapshot: Snapshot, prev: Snapshot | null): Set<string> | null {
  if (prev === null) return null;
  const out = new Set<string>();
  for (const [kind, names] of PLUGINS_READING) if (!snapshot.sameKind(kind, prev)) for (const n of names) out.add(n);
  if (!snapshot.sameKind('secrets', prev)) out.add(SECRETS_CHANGED);
  if (snapshot.sameKind('plugin_metadata', prev)) return out;
  for (const m of snapshot.list('plugin_metadata')) if (prev.get('plugin_metadata', m.item.id) !== m) out.add(m.item.id);
  for (const m of prev.list('plugin_metadata')) if (snapshot.get('plugin_metadata', m.item.id) !== m) out.add(m.item.id);
  return out;
}

/** Lists the chain of `old` when the route's new state (undefined: gone) no longer uses it. */
function dropChain(old: RouteState, now: RouteState | undefined, out: PluginChain[]): void {
  const chain = old.spec.payload.chain;
  if (now?.spec.payload.chain !== chain) out.push(chain);
}

/** Kinds other than routes that HTTP routes depend on. */
const ROUTE_DEPENDENCIES = HTTP_KINDS.filter((k) => k !== 'routes');

function onlyRoutesChanged(snapshot: Snapshot, prev: Snapshot): boolean {
  for (const kind of ROUTE_DEPENDENCIES) if (!snapshot.sameKind(kind, prev)) return false;
  return true;
}

/** Marks a changed secrets resource in the changed-metadata set (no plugin has this name). */
const SECRETS_CHANGED = '\0secrets';

/**
 * Whether a chain may be kept given the changed metadata (null: nothing may be kept). A chain whose confs
 * hold `$secret://` references is rebuilt when the secrets resource changed: its instances hold the values
 * resolved at creation.
 */
function metadataUnchanged(chain: PluginChain, changed: Set<string> | null): boolean {
  if (changed === null) return false;
  if (chain.secretRefs && changed.has(SECRETS_CHANGED)) return false;
  for (const name of changed) if (chain.has(name)) return false;
  return true;
}

export class HttpRuntimeBuilder implements RuntimeBuilder<HttpRuntime> {
  readonly name = 'http';
  readonly kinds = HTTP_KINDS;
  private readonly deps: HttpRuntimeDeps;
  private upstreams: UpstreamCache | null = null;
  private live: LiveConsumers | null = null;
  readonly pools: Pools;

  constructor(deps: HttpRuntimeDeps) {
    this.deps = deps;
    this.pools = new Pools({ http1Client: deps.upstreamClient ?? 'undici' });
  }

  /** Every upstream of the snapshot: upstreams/<id>, and inline ones keyed by their owner. */
  private upstreamConfs(snapshot: Snapshot): [string, JsonObject][] {
    const out: [string, JsonObject][] = [];
    for (const u of snapshot.list('upstreams')) out.push([`upstreams/${u.item.id}`, u.value]);
    for (const kind of ['services', 'routes'] as const) {
      for (const r of snapshot.list(kind)) {
        const inline = asObj(r.value.upstream);
        if (inline !== undefined) out.push([`${kind}/${r.item.id}`, inline]);
      }
    }
    return out;
  }

  build(snapshot: Snapshot, previous: HttpRuntime | null): HttpRuntime {
    const { plugins, logger } = this.deps;
    const prev = previous instanceof Runtime ? previous : null;
    const log = logger.child({ module: 'http-runtime' });

    const consumersKept = prev !== null && sameConsumers(snapshot, prev.snapshot, prev.consumers);
    const consumers = consumersKept ? prev.consumers : new SnapshotConsumers(snapshot);
    if (this.live === null) this.live = new LiveConsumers(consumers);
    else this.live.current = consumers;
    const directory = this.live;
    const metaChanged = changedMetadata(snapshot, prev?.snapshot ?? null);

    const metadata = new Map<string, JsonObject>();
    for (const m of snapshot.list('plugin_metadata')) metadata.set(m.item.id, m.value);
    const envFor = (scope: string) => (def: PluginDef, _conf: JsonObject): PluginEnv => ({
      logger: log.child({ plugin: def.name }),
      metadata: metadata.get(def.name),
      attr: this.deps.attrs[def.name] as JsonObject | undefined,
      scopeKey: scope,
      consumers: directory,
      secrets: snapshot,
    });
    const compileFor = (id: string) => (merged: JsonObject): PluginChain =>
      PluginChain.compile(merged, plugins, 'http', envFor(`route:${id}`), (name, msg) =>
        log.warn({ scope: `route:${id}`, plugin: name, error: msg }, 'plugin skipped'),
      );

    const clientCert = (id: string) => {
      const ssl = snapshot.get('ssls', id)?.value;
      if (ssl === undefined || ssl.type !== 'client') return undefined;
      return typeof ssl.cert === 'string' && typeof ssl.key === 'string' ? { cert: ssl.cert, key: ssl.key } : undefined;
    };
    const upstreamDeps = { registry: this.deps.balancers, pools: this.pools, health: this.deps.health, clientCert };
    const tools: RuntimeTools = {
      plugins,
      // Plugins a consumer (or its group) contributes count per route and consumer, as APISIX keys them by
      // conf_type "route&consumer": two consumers with identical limit-count confs never share a counter.
      withConsumer: (route, merged, names, username) => {
        const routeEnv = envFor(`route:${route.id}`);
        const consumerEnv = envFor(`route:${route.id}&consumer:${username}`);
        return route.chain.withConsumer(
          merged,
          names,
          plugins,
          (def, conf) => (names.has(def.name) ? consumerEnv : routeEnv)(def, conf),
          (name, msg) => log.warn({ route: route.id, plugin: name, error: msg }, 'consumer plugin skipped'),
        );
      },
      inlineFactory: (key, conf) => {
        try {
          return new UpstreamRuntime({ key, conf, ...upstreamDeps, health: this.deps.health?.(key, conf) });
        } catch (err) {
          log.warn({ upstream: key, error: (err as Error).message }, 'inline upstream skipped');
          return null;
        }
      },
    };

    const dropped: PluginChain[] = [];
    const prevUpstreams = this.upstreams;
    let upstreams: UpstreamCache;
    let global: PluginChain | null;
    let routes: ChunkedMap<RouteState>;
    let router: BuiltRouter<HttpRoute>;
    if (prev !== null && prevUpstreams !== null && onlyRoutesChanged(snapshot, prev.snapshot)) {
      // The common Admin API write: work in proportion to the routes that changed.
      const { changed, removed } = snapshot.diff('routes', prev.snapshot);
      const patch: [string, JsonObject | null][] = [];
      for (const id of removed) patch.push([`routes/${id}`, null]);
      for (const item of changed) patch.push([`routes/${item.item.id}`, asObj(item.value.upstream) ?? null]);
      upstreams = UpstreamCache.patch(prevUpstreams, patch, upstreamDeps);
      global = prev.global;
      const edit = new Edit(false);
      routes = prev.routes.copy();
      const remove: string[] = [];
      const upsert: RouteSpec<HttpRoute>[] = [];
      for (const id of removed) {
        if (!routes.has(id)) continue;
        dropChain(routes.get(id)!, undefined, dropped);
        routes.delete(id, edit);
        remove.push(id);
      }
      for (const item of changed) {
        const id = item.item.id;
        const old = prev.routes.get(id);
        if (item.value.status === 0) {
          if (old !== undefined) {
            dropChain(old, undefined, dropped);
            remove.push(id);
          }
          routes.delete(id, edit);
          continue;
        }
        const state = this.routeState(snapshot, item, old, upstreams, metaChanged, compileFor(id));
        if (old !== undefined) dropChain(old, state, dropped);
        routes.set(id, state, edit);
        upsert.push(state.spec);
      }
      router = prev.router.update({ remove, upsert });
    } else {
      upstreams = UpstreamCache.buildSync(prevUpstreams, this.upstreamConfs(snapshot), upstreamDeps);
      global = this.globalChain(snapshot, prev, metaChanged, envFor('global'), log);
      const edit = new Edit(true);
      routes = new ChunkedMap<RouteState>();
      const upsert: RouteSpec<HttpRoute>[] = [];
      for (const item of snapshot.list('routes')) {
        if (item.value.status === 0) continue;
        const old = prev?.routes.get(item.item.id);
        const state = this.routeState(snapshot, item, old, upstreams, metaChanged, compileFor(item.item.id));
        routes.set(item.item.id, state, edit);
        if (state.spec !== old?.spec) upsert.push(state.spec);
      }
      if (prev !== null) for (const [id, old] of prev.routes.entries()) dropChain(old, routes.get(id), dropped);
      if (prev === null) {
        router = buildRouter(upsert, { order: 'id', onError: (id, msg) => log.warn({ route: id, error: msg }, 'route skipped') });
      } else {
        const remove: string[] = [];
        for (const id of prev.routes.keys()) if (!routes.has(id)) remove.push(id);
        router = remove.length === 0 && upsert.length === 0 ? prev.router : prev.router.update({ remove, upsert });
      }
    }
    this.upstreams = upstreams;
    for (const [key, err] of upstreams.errors) {
      if (prev === null || prevUpstreams?.errors.get(key) !== err) log.warn({ upstream: key, error: err }, 'upstream skipped');
    }

    // Consumer chains stay valid while their route payload, the consumers and all metadata are unchanged.
    const consumerChains = new Map<string, ConsumerChainEntry>();
    if (prev !== null && consumersKept && metaChanged !== null && metaChanged.size === 0) {
      for (const [key, e] of prev.consumerChains) {
        if (routes.get(e.route.id)?.spec.payload === e.route) consumerChains.set(key, e);
      }
    }
    if (prev?.global != null && prev.global !== global) dropped.push(prev.global);
    return new Runtime(snapshot, router, global, routes, consumers, consumerChains, upstreams, tools, prev?.seq ?? 0, dropped);
  }

  /** The global-rules chain: the previous one while global_rules and its plugins' metadata are unchanged. */
  private globalChain(
    snapshot: Snapshot,
    prev: Runtime | null,
    metaChanged: Set<string> | null,
    env: EnvFor,
    log: Logger,
  ): PluginChain | null {
    if (prev !== null && snapshot.sameKind('global_rules', prev.snapshot)) {
      if (prev.global === null || metadataUnchanged(prev.global, metaChanged)) return prev.global;
    }
    const rules = snapshot.list('global_rules').map((g) => ({ id: g.item.id, plugins: asObj(g.value.plugins) ?? {} }));
    if (rules.length === 0) return null;
    return PluginChain.compileGlobal(rules, this.deps.plugins, 'http', env, (name, msg) =>
      log.warn({ scope: 'global_rules', plugin: name, error: msg }, 'global plugin skipped'),
    );
  }

  /** The state of one enabled route: the previous one when its inputs are unchanged, else rebuilt. */
  private routeState(
    snapshot: Snapshot,
    item: SnapshotItem,
    old: RouteState | undefined,
    upstreams: UpstreamCache,
    metaChanged: Set<string> | null,
    compile: (merged: JsonObject) => PluginChain,
  ): RouteState {
    const route = item.value;
    const id = item.item.id;
    const serviceId = idOf(route.service_id);
    const service = serviceId !== undefined ? snapshot.get('services', serviceId) : undefined;
    const pcId = idOf(route.plugin_config_id);
    const pluginConfig = pcId !== undefined ? snapshot.get('plugin_configs', pcId) : undefined;
    const svc = service?.value;
    let upstream: UpstreamRuntime | null = null;
    const upId = idOf(route.upstream_id);
    // APISIX: upstream_id wins over an inline upstream on the same route.
    if (upId !== undefined) upstream = upstreams.get(`upstreams/${upId}`) ?? null;
    else if (asObj(route.upstream) !== undefined) upstream = upstreams.get(`routes/${id}`) ?? null;
    else if (svc !== undefined) {
      const sId = idOf(svc.upstream_id);
      if (asObj(svc.upstream) !== undefined) upstream = upstreams.get(`services/${serviceId}`) ?? null;
      else if (sId !== undefined) upstream = upstreams.get(`upstreams/${sId}`) ?? null;
    }

    const sameInputs =
      old !== undefined &&
      old.item === item &&
      old.service === service &&
      old.pluginConfig === pluginConfig &&
      metadataUnchanged(old.spec.payload.chain, metaChanged);
    if (sameInputs && old.upstream === upstream) return old;

    let broken: HttpRoute['broken'] = null;
    // In APISIX's order (init.lua): plugin_config, then service, then upstream_id.
    if (pcId !== undefined && pluginConfig === undefined) broken = { code: 'SWY_ERR_PLUGIN_CONFIG_NOT_FOUND', detail: `missing plugin config ${pcId}` };
    else if (serviceId !== undefined && service === undefined) broken = { code: 'SWY_ERR_SERVICE_NOT_FOUND', detail: `missing service ${serviceId}` };
    else if (upId !== undefined && upstream === null) broken = { code: 'SWY_ERR_UPSTREAM_NOT_FOUND', detail: `missing upstream ${upId}` };
    let merged: JsonObject;
    let chain: PluginChain;
    if (sameInputs) {
      // Only the upstream changed: the chain and merged plugins carry over.
      merged = old.spec.payload.plugins;
      chain = old.spec.payload.chain;
    } else {
      merged = mergeRoutePlugins({
        service: asObj(svc?.plugins),
        pluginConfig: asObj(pluginConfig?.value.plugins),
        route: asObj(route.plugins),
      });
      chain = compile(merged);
    }
    const uris = (route.uris as string[] | undefined) ?? (route.uri !== undefined ? [route.uri as string] : []);
    const hosts = (route.hosts as string[] | undefined) ?? (route.host !== undefined ? [route.host as string] : (svc?.hosts as string[] | undefined));
    const remoteAddrs = (route.remote_addrs as string[] | undefined) ?? (route.remote_addr !== undefined ? [route.remote_addr as string] : undefined);
    const timeout = asObj(route.timeout) as unknown as TimeoutConf | undefined;
    const payload: HttpRoute = {
      id,
      name: route.name as string | undefined,
      serviceId,
      serviceName: svc?.name as string | undefined,
      upstream,
      chain,
      plugins: merged,
      enableWebsocket: (route.enable_websocket ?? svc?.enable_websocket ?? false) === true,
      timeout: timeout ?? null,
      broken,
    };
    const spec: RouteSpec<HttpRoute> = {
      id,
      uris,
      methods: route.methods as string[] | undefined,
      hosts,
      remoteAddrs,
      vars: route.vars,
      priority: (route.priority as number | undefined) ?? 0,
      payload,
    };
    return { item, service, pluginConfig, upstream, spec };
  }

  /** Destroys the chains `runtime` referenced that `next` does not, and its request-time upstreams. */
  retire(runtime: HttpRuntime, next: HttpRuntime): void {
    if (runtime instanceof Runtime) runtime.release(next instanceof Runtime ? next : null);
  }

  /** The deferred retirement of `runtime` (see the module comment); O(changes) when `next` was built from it. */
  detach(runtime: HttpRuntime, next: HttpRuntime): () => void {
    if (runtime instanceof Runtime && next instanceof Runtime) {
      if (next.base === runtime.seq) return runtime.detach(next, next.dropped);
      // Not built from `runtime` (full rebuild): compare its route and global chains with next's, once.
      const live = next.chains();
      const dropped: PluginChain[] = [];
      if (runtime.global !== null && !live.has(runtime.global)) dropped.push(runtime.global);
      for (const s of runtime.routes.values()) if (!live.has(s.spec.payload.chain)) dropped.push(s.spec.payload.chain);
      return runtime.detach(next, dropped);
    }
    return () => {};
  }

  /** A build that was never published: destroys what it created beyond `current`. */
  discard(runtime: HttpRuntime, current: HttpRuntime | null): void {
    if (runtime instanceof Runtime) runtime.release(current instanceof Runtime ? current : null);
  }

  async close(): Promise<void> {
    this.upstreams?.close();
    await this.pools.close();
  }
}
