// One upstream at runtime: its settings with APISIX defaults, resolved endpoints and balancer. Hostname nodes
// are resolved off the request path (DnsCache); when an answer changes the endpoints and balancer are
// rebuilt and swapped. Shared by the HTTP proxy (with Pools) and the stream proxy (pick only).
import { createHash } from 'node:crypto';
import type { JsonObject } from '../config/resources.ts';
import type { Balancer, BalancerRegistry, Endpoint, HealthView, Outcome, PickContext, PickResult } from './balancer.ts';
import { ALL_HEALTHY } from './balancer.ts';
import { createBalancer } from './balancers.ts';
import { discoveryProviders, discoverySource, type DiscoveryRegistry, type NodeSource } from './discovery.ts';
import type { DnsCache } from './dns.ts';
import { buildEndpoints, defaultPort, hostnamesOf, parseNodes, type NodeSpec } from './endpoints.ts';
import type { PoolHandle, Pools } from './pools.ts';

export type PassHost = 'pass' | 'node' | 'rewrite';

/** Seconds, as configured (APISIX `timeout`); defaults follow nginx's proxy_*_timeout (60 s). */
export interface UpstreamTimeout {
  readonly connect: number;
  readonly send: number;
  readonly read: number;
}

export interface KeepalivePool {
  readonly size: number;
  /** Seconds. */
  readonly idleTimeout: number;
  readonly requests: number;
}

export interface UpstreamTls {
  /** Verify the upstream certificate (APISIX default false). */
  readonly verify: boolean;
  readonly clientCert?: string;
  readonly clientKey?: string;
}

export interface UpstreamDeps {
  readonly registry: BalancerRegistry;
  readonly health?: HealthView;
  /** HTTP connection pools (`pool()`); the stream proxy leaves it out. */
  readonly pools?: Pools | null;
  /** Needed for hostname nodes; without it only IP nodes are used. */
  readonly dns?: DnsCache | null;
  /** Resolves `tls.client_cert_id` (an ssl object of type client) to its PEM pair. */
  readonly clientCert?: (id: string) => { cert: string; key: string } | undefined;
  /** Called after a DNS change rebuilt the endpoints (UpstreamCache uses it to retire unused pools). */
  readonly onEndpointsChanged?: (upstream: UpstreamRuntime) => void;
  /** Providers for `discovery_type` upstreams (default: the process-wide discoveryProviders). */
  readonly discovery?: DiscoveryRegistry;
}

export interface UpstreamRuntimeInit extends UpstreamDeps {
  /** Upstream id, or a key for an inline upstream (e.g. `routes/12`). */
  readonly key: string;
  /** The upstream object with schema defaults applied (missing ones are defaulted here too). */
  readonly conf: JsonObject;
}

const DEFAULT_TIMEOUT = 60;
const PASS_HOST = new Set<string>(['pass', 'node', 'rewrite']);

export class UpstreamRuntime {
  readonly key: string;
  readonly conf: JsonObject;
  /** JSON of `conf`, used to detect unchanged upstreams across reloads. */
  readonly confJson: string;
  readonly type: string;
  readonly scheme: string;
  readonly timeout: UpstreamTimeout;
  readonly connectTimeoutMs: number;
  /** 0: no limit on the total time spent retrying. */
  readonly retryTimeoutMs: number;
  /** `retry_timeout` in seconds (0: no limit). */
  readonly retryTimeout: number;
  readonly passHost: PassHost;
  readonly upstreamHost: string | null;
  readonly tls: UpstreamTls;
  readonly keepalivePool: KeepalivePool;
  /** HTTP/2 to the upstream: `http2: true`, or a grpc/grpcs scheme. h2 over TLS, h2c otherwise. */
  readonly http2: boolean;
  /** Everything but the endpoint that distinguishes connection pools. */
  readonly poolPrefix: string;
  readonly health: HealthView;

  /** From `nodes`, or from the discovery source (replaced when it changes). */
  private nodes: readonly NodeSpec[];
  private readonly explicitRetries: number | null;
  private readonly deps: UpstreamDeps;
  private readonly unwatch: (() => void)[] = [];
  private readonly initial: Promise<void>;
  private endpointList: readonly Endpoint[] = [];
  private nodeHosts = new Map<string, string>();
  private current: Balancer;
  private closed = false;

  /** Throws on an invalid conf (bad nodes, unknown balancer type, port-less L4 nodes). */
  constructor(init: UpstreamRuntimeInit) {
    const c = init.conf;
    this.key = init.key;
    this.conf = c;
    this.confJson = JSON.stringify(c);
    this.deps = init;
    this.health = init.health ?? ALL_HEALTHY;
    this.type = str(c.type) ?? 'roundrobin';
    this.scheme = str(c.scheme) ?? 'http';
    const t = obj(c.timeout);
    this.timeout = {
      connect: num(t?.connect) ?? DEFAULT_TIMEOUT,
      send: num(t?.send) ?? DEFAULT_TIMEOUT,
      read: num(t?.read) ?? DEFAULT_TIMEOUT,
    };
    this.connectTimeoutMs = Math.round(this.timeout.connect * 1000);
    this.retryTimeout = num(c.retry_timeout) ?? 0;
    this.retryTimeoutMs = Math.round(this.retryTimeout * 1000);
    this.explicitRetries = num(c.retries) ?? null;
    const pass = str(c.pass_host) ?? 'pass';
    if (!PASS_HOST.has(pass)) throw new Error(`invalid pass_host ${JSON.stringify(pass)}`);
    this.passHost = pass as PassHost;
    this.upstreamHost = str(c.upstream_host) ?? null;
    if (this.passHost === 'rewrite' && this.upstreamHost === null) throw new Error('pass_host rewrite needs upstream_host');
    this.tls = tlsOf(c, init.clientCert);
    const ka = obj(c.keepalive_pool);
    this.keepalivePool = {
      size: num(ka?.size) ?? 320,
      idleTimeout: num(ka?.idle_timeout) ?? 60,
      requests: num(ka?.requests) ?? 1000,
    };
    this.http2 = c.http2 === true || this.scheme === 'grpc' || this.scheme === 'grpcs';
    this.poolPrefix = [
      this.scheme,
      this.http2 ? 'h2' : 'h1',
      `${this.keepalivePool.size}/${this.keepalivePool.idleTimeout}/${this.keepalivePool.requests}`,
      tlsDigest(this.tls),
    ].join('#');

    this.nodes = parseNodes(c);
    if (!init.registry.has(this.type)) throw new Error(`unknown balancer type ${JSON.stringify(this.type)}`);
    const source = discoverySource(c, init.discovery ?? discoveryProviders);
    if (source !== null) this.nodes = source.nodes() ?? [];
    this.current = this.rebuild();
    this.initial = source !== null ? this.watchSource(source) : this.watchHostnames();
  }

  get endpoints(): readonly Endpoint[] {
    return this.endpointList;
  }

  get balancer(): Balancer {
    return this.current;
  }

  /** `retries` when configured, otherwise endpoints - 1 (APISIX). */
  get retries(): number {
    return this.explicitRetries ?? Math.max(0, this.endpointList.length - 1);
  }

  /** Scheme grpc or grpcs. */
  get isGrpc(): boolean {
    return this.scheme === 'grpc' || this.scheme === 'grpcs';
  }

  /** The scheme's default port (null for L4 schemes), for `host:port` Host headers. */
  get defaultPort(): number | null {
    return defaultPort(this.scheme);
  }

  /** The connection pool of `endpoint` for dispatch(); needs `pools` in the deps. */
  pool(endpoint: Endpoint, connectTimeoutMs?: number, http2?: boolean): PoolHandle {
    // hot path
    const pools = this.deps.pools;
    if (!pools) throw new Error(`upstream ${this.key} has no connection pools`);
    return pools.get(this, endpoint, connectTimeoutMs, http2);
  }

  /**
   * Balancer bookkeeping for paths that do not go through dispatch() (stream proxy, websocket upgrades):
   * dispatch() already reports begin/end itself, so never call these around it.
   */
  begin(endpoint: Endpoint): void {
    this.current.begin?.(endpoint);
  }

  end(endpoint: Endpoint, outcome: Outcome): void {
    this.current.end?.(endpoint, outcome);
  }

  /** Resolves once the first DNS answers (or failures) for hostname nodes are in. */
  ready(): Promise<void> {
    return this.initial;
  }

  pick(ctx: PickContext): PickResult {
    // hot path
    return this.current.pick(ctx);
  }

  /** The Host header to send upstream for `endpoint` (pass_host). */
  hostHeader(endpoint: Endpoint, clientHost: string): string {
    // hot path
    if (this.passHost === 'pass') return clientHost;
    if (this.passHost === 'rewrite') return this.upstreamHost!;
    return this.nodeHosts.get(endpoint.key) ?? endpoint.domain;
  }

  /** Stops background DNS refreshes. Picking keeps working on the last endpoints. */
  close(): void {
    this.closed = true;
    for (const u of this.unwatch.splice(0)) u();
  }

  private rebuild(): Balancer {
    const dns = this.deps.dns;
    const endpoints = buildEndpoints(this.nodes, (host) => dns?.peek(host));
    const dflt = defaultPort(this.scheme);
    const nodeHosts = new Map<string, string>();
    for (const e of endpoints) {
      const host = e.domain.includes(':') ? `[${e.domain}]` : e.domain;
      nodeHosts.set(e.key, e.port === dflt ? host : `${host}:${e.port}`);
    }
    const balancer = createBalancer(this.deps.registry, this.type, endpoints, this.conf, this.health);
    this.endpointList = endpoints;
    this.nodeHosts = nodeHosts;
    this.current = balancer;
    return balancer;
  }

  /** Discovery: nodes follow the source; discovered nodes are IPs, so no hostname resolution is involved. */
  private async watchSource(source: NodeSource): Promise<void> {
    const onChange = (): void => {
      if (this.closed) return;
      this.nodes = source.nodes() ?? [];
      this.rebuild();
      this.deps.onEndpointsChanged?.(this);
    };
    this.unwatch.push(source.watch(onChange));
    await source.ready();
    if (this.closed) return;
    if (!sameKeys(this.endpointList, buildEndpoints(source.nodes() ?? [], () => undefined))) onChange();
  }

  private async watchHostnames(): Promise<void> {
    const dns = this.deps.dns;
    const names = hostnamesOf(this.nodes);
    if (!dns || names.length === 0) return;
    const onChange = (): void => {
      if (this.closed) return;
      this.rebuild();
      this.deps.onEndpointsChanged?.(this);
    };
    for (const name of names) this.unwatch.push(dns.watch(name, onChange));
    await Promise.allSettled(names.map((n) => dns.resolve(n)));
    if (this.closed) return;
    const before = this.endpointList;
    const after = buildEndpoints(this.nodes, (host) => dns.peek(host));
    if (!sameKeys(before, after)) onChange();
  }
}

function sameKeys(a: readonly Endpoint[], b: readonly Endpoint[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.key !== b[i]!.key) return false;
  return true;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function obj(v: unknown): JsonObject | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : undefined;
}

function tlsOf(c: JsonObject, lookup: UpstreamDeps['clientCert']): UpstreamTls {
  const t = obj(c.tls);
  const verify = t?.verify === true;
  if (!t) return { verify };
  const id = t.client_cert_id;
  if (typeof id === 'string' || typeof id === 'number') {
    const pair = lookup?.(String(id));
    if (!pair) throw new Error(`client_cert_id ${String(id)} not found`);
    return { verify, clientCert: pair.cert, clientKey: pair.key };
  }
  const cert = str(t.client_cert);
  const key = str(t.client_key);
  return cert !== undefined && key !== undefined ? { verify, clientCert: cert, clientKey: key } : { verify };
}

/** Distinguishes pools by TLS settings without putting key material into map keys. */
function tlsDigest(t: UpstreamTls): string {
  if (t.clientCert === undefined) return t.verify ? 'v' : 'n';
  const h = createHash('sha256').update(t.clientCert).update('\0').update(t.clientKey ?? '').digest('base64url');
  return `${t.verify ? 'v' : 'n'}${h.slice(0, 22)}`;
}

export { UpstreamCache, type UpstreamCacheDeps } from './upstream-cache.ts';
