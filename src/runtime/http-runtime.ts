// Builds the HTTP data-plane runtime from a snapshot: routes merged with their service and plugin_config,
// compiled plugin chains, the router, and upstream runtimes (reused across snapshots when unchanged).
import type { JsonObject } from '../config/resources.ts';
import type { Snapshot } from '../config/snapshot.ts';
import type { Logger } from '../observability/logger.ts';
import type { ConsumerRef } from '../plugin/context.ts';
import { PluginChain } from '../plugin/chain.ts';
import { consumerPluginNames, mergeConsumerPlugins, mergeRoutePlugins } from '../plugin/merge.ts';
import type { PluginDef, PluginEnv } from '../plugin/plugin.ts';
import type { PluginRegistry } from '../plugin/registry.ts';
import { buildRouter, type RouteSpec } from '../router/router.ts';
import type { BalancerRegistry, HealthView } from '../upstream/balancer.ts';
import { Pools } from '../upstream/pools.ts';
import { UpstreamCache, UpstreamRuntime } from '../upstream/upstream.ts';
import { SnapshotConsumers } from './consumers.ts';
import type { RuntimeBuilder } from './manager.ts';
import type { HttpRoute, HttpRuntime, TimeoutConf } from './types.ts';

export interface HttpRuntimeDeps {
  plugins: PluginRegistry;
  balancers: BalancerRegistry;
  attrs: Record<string, Record<string, unknown>>;
  logger: Logger;
  /** Health state shared by every upstream (HealthSink owner). */
  health?: HealthView;
}

function asObj(v: unknown): JsonObject | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as JsonObject) : undefined;
}

function idOf(v: unknown): string | undefined {
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
}

class Runtime implements HttpRuntime {
  readonly revision: number;
  readonly router: HttpRuntime['router'];
  readonly global: PluginChain | null;
  private readonly snapshot: Snapshot;
  private readonly upstreams: UpstreamCache;
  private readonly consumerChains = new Map<string, PluginChain>();
  private readonly withConsumer: (route: HttpRoute, merged: JsonObject, names: ReadonlySet<string>) => PluginChain;
  readonly chains: PluginChain[];
  readonly consumers: SnapshotConsumers;

  constructor(
    snapshot: Snapshot,
    router: HttpRuntime['router'],
    global: PluginChain | null,
    upstreams: UpstreamCache,
    chains: PluginChain[],
    consumers: SnapshotConsumers,
    withConsumer: (route: HttpRoute, merged: JsonObject, names: ReadonlySet<string>) => PluginChain,
  ) {
    this.revision = snapshot.revision;
    this.snapshot = snapshot;
    this.router = router;
    this.global = global;
    this.upstreams = upstreams;
    this.chains = chains;
    this.consumers = consumers;
    this.withConsumer = withConsumer;
  }

  resolveUpstream(ref: string | JsonObject): UpstreamRuntime | null {
    if (typeof ref === 'string') return this.upstreams.get(`upstreams/${ref}`) ?? null;
    return this.inlineUpstream(ref);
  }

  /** Inline upstreams chosen at request time (traffic-split): built once per distinct conf, bounded. */
  private readonly inline = new Map<string, UpstreamRuntime | null>();
  inlineFactory: ((key: string, conf: JsonObject) => UpstreamRuntime | null) | null = null;

  private inlineUpstream(conf: JsonObject): UpstreamRuntime | null {
    const key = JSON.stringify(conf);
    let u = this.inline.get(key);
    if (u === undefined) {
      u = this.inlineFactory?.(`inline/${this.inline.size}`, conf) ?? null;
      if (this.inline.size < 1000) this.inline.set(key, u);
    }
    return u;
  }

  consumerChain(route: HttpRoute, consumer: ConsumerRef): PluginChain {
    const key = `${route.id}\0${consumer.username}\0${consumer.credentialId ?? ''}`;
    let chain = this.consumerChains.get(key);
    if (chain !== undefined) return chain;
    const own = this.consumers.get(consumer.username) ?? consumer;
    const groupId = own.group_id;
    const group = groupId !== undefined ? this.snapshot.get('consumer_groups', groupId) : undefined;
    const groupPlugins = withoutAuth(asObj(group?.value.plugins), this.pluginsRegistry);
    const consumerPlugins = withoutAuth(asObj(own.plugins), this.pluginsRegistry);
    if (groupPlugins === undefined && consumerPlugins === undefined) chain = route.chain;
    else {
      const merged = mergeConsumerPlugins(route.plugins, groupPlugins, consumerPlugins);
      chain = this.withConsumer(route, merged, consumerPluginNames(groupPlugins, consumerPlugins));
    }
    // Bounded: one entry per (route, consumer) pair that actually sent traffic in this snapshot.
    if (this.consumerChains.size < 100_000) this.consumerChains.set(key, chain);
    return chain;
  }

  pluginsRegistry: PluginRegistry | null = null;

  destroy(): void {
    for (const u of this.inline.values()) u?.close();
    for (const c of this.chains) c.destroy();
    for (const c of this.consumerChains.values()) if (!this.chains.includes(c)) c.destroy();
  }
}

/** Auth plugins of a consumer identify it; they are not re-run after identification (APISIX skips them). */
function withoutAuth(plugins: JsonObject | undefined, registry: PluginRegistry | null): JsonObject | undefined {
  if (plugins === undefined || registry === null) return plugins;
  let out: JsonObject | undefined;
  for (const name in plugins) {
    if (registry.known(name)?.type === 'auth') continue;
    (out ??= {})[name] = plugins[name]!;
  }
  return out;
}

export class HttpRuntimeBuilder implements RuntimeBuilder<HttpRuntime> {
  readonly name = 'http';
  private readonly deps: HttpRuntimeDeps;
  private upstreams: UpstreamCache | null = null;
  readonly pools = new Pools();

  constructor(deps: HttpRuntimeDeps) {
    this.deps = deps;
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

  build(snapshot: Snapshot, _previous: HttpRuntime | null): HttpRuntime {
    const { plugins, logger } = this.deps;
    const log = logger.child({ component: 'http-runtime' });
    const consumers = new SnapshotConsumers(snapshot);
    const metadata = new Map<string, JsonObject>();
    for (const m of snapshot.list('plugin_metadata')) metadata.set(m.item.id, m.value);
    const envFor = (scope: string) => (def: PluginDef, _conf: JsonObject): PluginEnv => ({
      logger: log.child({ plugin: def.name }),
      metadata: metadata.get(def.name),
      attr: this.deps.attrs[def.name] as JsonObject | undefined,
      scopeKey: scope,
      consumers,
    });
    const chains: PluginChain[] = [];
    const compile = (pl: JsonObject, scope: string): PluginChain => {
      const c = PluginChain.compile(pl, plugins, 'http', envFor(scope), (name, msg) =>
        log.warn({ scope, plugin: name, error: msg }, 'plugin skipped'),
      );
      return c;
    };

    const clientCert = (id: string) => {
      const ssl = snapshot.get('ssls', id)?.value;
      if (ssl === undefined || ssl.type !== 'client') return undefined;
      return typeof ssl.cert === 'string' && typeof ssl.key === 'string' ? { cert: ssl.cert, key: ssl.key } : undefined;
    };
    const health = this.deps.health;
    const upstreamDeps = {
      registry: this.deps.balancers,
      pools: this.pools,
      health: health === undefined ? undefined : () => health,
      clientCert,
    };
    const upstreams = UpstreamCache.buildSync(this.upstreams, this.upstreamConfs(snapshot), upstreamDeps);
    this.upstreams = upstreams;
    for (const [key, err] of upstreams.errors) log.warn({ upstream: key, error: err }, 'upstream skipped');

    const globalRules = snapshot.list('global_rules').map((g) => ({ id: g.item.id, plugins: asObj(g.value.plugins) ?? {} }));
    const global =
      globalRules.length > 0
        ? PluginChain.compileGlobal(globalRules, plugins, 'http', envFor('global'), (name, msg) =>
            log.warn({ scope: 'global_rules', plugin: name, error: msg }, 'global plugin skipped'),
          )
        : null;
    if (global !== null) chains.push(global);

    const specs: RouteSpec<HttpRoute>[] = [];
    for (const { item, value: route } of snapshot.list('routes')) {
      if (route.status === 0) continue;
      const serviceId = idOf(route.service_id);
      const service = serviceId !== undefined ? snapshot.get('services', serviceId) : undefined;
      const pcId = idOf(route.plugin_config_id);
      const pc = pcId !== undefined ? snapshot.get('plugin_configs', pcId) : undefined;
      let broken: HttpRoute['broken'] = null;
      if (serviceId !== undefined && service === undefined) broken = { status: 404, message: `missing service ${serviceId}` };
      else if (pcId !== undefined && pc === undefined) broken = { status: 503, message: `missing plugin config ${pcId}` };
      const svc = service?.value;
      const merged = mergeRoutePlugins({
        service: asObj(svc?.plugins),
        pluginConfig: asObj(pc?.value.plugins),
        route: asObj(route.plugins),
      });
      const chain = compile(merged, `route:${item.id}`);
      chains.push(chain);
      let upstream: UpstreamRuntime | null = null;
      const inline = asObj(route.upstream);
      const upId = idOf(route.upstream_id);
      if (inline !== undefined) upstream = upstreams.get(`routes/${item.id}`) ?? null;
      else if (upId !== undefined) upstream = upstreams.get(`upstreams/${upId}`) ?? null;
      else if (svc !== undefined) {
        const sId = idOf(svc.upstream_id);
        if (asObj(svc.upstream) !== undefined) upstream = upstreams.get(`services/${serviceId}`) ?? null;
        else if (sId !== undefined) upstream = upstreams.get(`upstreams/${sId}`) ?? null;
      }
      if (upId !== undefined && upstream === null && broken === null) broken = { status: 503, message: `missing upstream ${upId}` };
      const uris = (route.uris as string[] | undefined) ?? (route.uri !== undefined ? [route.uri as string] : []);
      const hosts = (route.hosts as string[] | undefined) ?? (route.host !== undefined ? [route.host as string] : (svc?.hosts as string[] | undefined));
      const remoteAddrs = (route.remote_addrs as string[] | undefined) ?? (route.remote_addr !== undefined ? [route.remote_addr as string] : undefined);
      const timeout = asObj(route.timeout) as unknown as TimeoutConf | undefined;
      const payload: HttpRoute = {
        id: item.id,
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
      specs.push({
        id: item.id,
        uris,
        methods: route.methods as string[] | undefined,
        hosts,
        remoteAddrs,
        vars: route.vars,
        priority: (route.priority as number | undefined) ?? 0,
        payload,
      });
    }
    const router = buildRouter(specs, { onError: (id, msg) => log.warn({ route: id, error: msg }, 'route skipped') });
    const withConsumer = (route: HttpRoute, merged: JsonObject, names: ReadonlySet<string>): PluginChain =>
      route.chain.withConsumer(merged, names, plugins, envFor(`route:${route.id}`), (name, msg) =>
        log.warn({ route: route.id, plugin: name, error: msg }, 'consumer plugin skipped'),
      );
    const rt = new Runtime(snapshot, router, global, upstreams, chains, consumers, withConsumer);
    rt.pluginsRegistry = plugins;
    rt.inlineFactory = (key, conf) => {
      try {
        return new UpstreamRuntime({ key, conf, ...upstreamDeps, health: health });
      } catch (err) {
        log.warn({ upstream: key, error: (err as Error).message }, 'inline upstream skipped');
        return null;
      }
    };
    return rt;
  }

  retire(runtime: HttpRuntime): void {
    (runtime as Runtime).destroy();
  }

  async close(): Promise<void> {
    this.upstreams?.close();
    await this.pools.close();
  }
}
