// Connection pools to upstream endpoints, one per (scheme, TLS settings, http2, keepalive, connect timeout,
// endpoint): an undici Pool, or for HTTP/1.1 with `switchyard.upstream_http1_client: socket` the socket-level
// client of src/upstream/h1 (h2 and h2c stay on undici). Pools survive config reloads while that key is still
// in use; retired pools are closed gracefully in the background (requests already queued or running finish first).
import { Pool, type Dispatcher } from 'undici';
import type { Endpoint } from './balancer.ts';
import { H1Pool, type H1PoolOptions } from './h1/pool.ts';
import type { UpstreamRuntime } from './upstream.ts';

/** The part of undici's Dispatcher that dispatch() uses; undici's Pool and H1Pool both provide it. */
export interface UpstreamDispatcher {
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

/** What dispatch() needs: the pool plus the runtime/endpoint it reports begin/end to. */
export interface PoolHandle {
  readonly key: string;
  readonly dispatcher: UpstreamDispatcher;
  readonly upstream: UpstreamRuntime;
  readonly endpoint: Endpoint;
  /** The dispatcher drops the headers it manages itself (H1Pool's request head does), so dispatch() need not. */
  readonly ownsHeaders: boolean;
}

export interface PoolsOptions {
  /** Cap on concurrent connections per endpoint (default: unbounded; idle ones close after idle_timeout). */
  readonly maxConnections?: number | null;
  /** Largest response header block, bytes (default 16 KiB like undici). */
  readonly maxHeaderSize?: number;
  /** HTTP/1.1 upstream client: undici when absent, or the socket-level one (switchyard.upstream_http1_client, whose config default is socket). */
  readonly http1Client?: 'undici' | 'socket';
}

export class Pools {
  private readonly opts: PoolsOptions;
  private readonly pools = new Map<string, UpstreamDispatcher>();
  private readonly handles = new WeakMap<UpstreamRuntime, Map<string, PoolHandle>>();
  private readonly retiring = new Set<Promise<void>>();
  private closed = false;

  constructor(opts: PoolsOptions = {}) {
    this.opts = opts;
  }

  /**
   * The pool for `endpoint` of `upstream`. A `connectTimeoutMs` different from the upstream's own (a route
   * timeout override) selects a separate pool, because the connect timeout is a property of the connector.
   */
  get(upstream: UpstreamRuntime, endpoint: Endpoint, connectTimeoutMs?: number, http2?: boolean): PoolHandle {
    // hot path
    const override = connectTimeoutMs !== undefined && connectTimeoutMs !== upstream.connectTimeoutMs;
    // A plugin may ask for another protocol than configured for one request (grpc-web -> gRPC over h2).
    const proto = http2 !== undefined && http2 !== upstream.http2;
    const memoKey = override || proto ? `${connectTimeoutMs}|${proto ? 'p' : ''}|${endpoint.key}` : endpoint.key;
    let memo = this.handles.get(upstream);
    if (memo === undefined) {
      memo = new Map();
      this.handles.set(upstream, memo);
    }
    const h = memo.get(memoKey);
    if (h !== undefined && h.endpoint === endpoint && this.pools.get(h.key) === h.dispatcher) return h;
    const timeout = override ? connectTimeoutMs : upstream.connectTimeoutMs;
    const h2 = proto ? http2 : upstream.http2;
    const key = poolKey(upstream, endpoint, timeout, h2);
    const dispatcher = this.pool(key, upstream, endpoint, timeout, h2);
    const created: PoolHandle = { key, dispatcher, upstream, endpoint, ownsHeaders: dispatcher instanceof H1Pool };
    memo.set(memoKey, created);
    return created;
  }

  /** Identity of the pools of `endpoint` of `upstream`, whatever their connect timeout (see `retain`). */
  liveKey(upstream: UpstreamRuntime, endpoint: Endpoint): string {
    return `${upstream.poolPrefix}#${endpoint.key}`;
  }

  /** Closes, in the background, every pool whose `liveKey` is not in `live`. */
  retain(live: ReadonlySet<string>): void {
    for (const [key, pool] of this.pools) {
      let base = key.slice(0, key.lastIndexOf('#'));
      if (base.endsWith('+h2') || base.endsWith('+h1')) base = base.slice(0, -3);
      if (live.has(base)) continue;
      this.pools.delete(key);
      this.retire(pool);
    }
  }

  size(): number {
    return this.pools.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const pool of this.pools.values()) this.retire(pool);
    this.pools.clear();
    await Promise.allSettled([...this.retiring]);
  }

  private retire(pool: UpstreamDispatcher): void {
    const p = pool.close().catch(() => pool.destroy().catch(() => undefined));
    this.retiring.add(p);
    void p.finally(() => this.retiring.delete(p));
  }

  private pool(key: string, upstream: UpstreamRuntime, endpoint: Endpoint, connectTimeoutMs: number, h2: boolean): UpstreamDispatcher {
    const existing = this.pools.get(key);
    if (existing !== undefined) return existing;
    if (this.closed) throw new Error('pools closed');
    const pool: UpstreamDispatcher = !h2 && this.opts.http1Client === 'socket'
      ? new H1Pool(h1Options(upstream, endpoint, connectTimeoutMs, this.opts))
      : new Pool(origin(upstream, endpoint), poolOptions(upstream, connectTimeoutMs, h2, this.opts));
    this.pools.set(key, pool);
    return pool;
  }
}

/** The same keepalive_pool, TLS and limit settings as poolOptions(), for the socket-level client. */
function h1Options(upstream: UpstreamRuntime, endpoint: Endpoint, connectTimeoutMs: number, opts: PoolsOptions): H1PoolOptions {
  const ka = upstream.keepalivePool;
  const t = upstream.tls;
  return {
    host: endpoint.host,
    port: endpoint.port,
    tls: isTlsScheme(upstream.scheme)
      ? { rejectUnauthorized: t.verify, ...(t.clientCert !== undefined && t.clientKey !== undefined ? { cert: t.clientCert, key: t.clientKey } : {}) }
      : null,
    connectTimeoutMs,
    keepAliveSize: Math.max(0, ka.size),
    idleTimeoutMs: Math.max(0, ka.idleTimeout * 1000),
    maxRequests: ka.requests > 0 ? ka.requests : 0,
    maxConnections: opts.maxConnections ?? null,
    maxHeaderSize: opts.maxHeaderSize ?? 16 * 1024,
  };
}

function isTlsScheme(scheme: string): boolean {
  return scheme === 'https' || scheme === 'grpcs';
}

function origin(upstream: UpstreamRuntime, endpoint: Endpoint): string {
  const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
  return `${isTlsScheme(upstream.scheme) ? 'https' : 'http'}://${host}:${endpoint.port}`;
}

function poolKey(upstream: UpstreamRuntime, endpoint: Endpoint, connectTimeoutMs: number, h2: boolean): string {
  const p = h2 === upstream.http2 ? '' : h2 ? '+h2' : '+h1';
  return `${upstream.poolPrefix}#${endpoint.key}${p}#${connectTimeoutMs}`;
}

function poolOptions(upstream: UpstreamRuntime, connectTimeoutMs: number, h2: boolean, opts: PoolsOptions): Pool.Options {
  const ka = upstream.keepalivePool;
  const keepalive = ka.size > 0 && ka.idleTimeout > 0;
  const tls = isTlsScheme(upstream.scheme);
  const o: Pool.Options = {
    connections: opts.maxConnections ?? null,
    connectTimeout: connectTimeoutMs,
    keepAliveTimeout: keepalive ? ka.idleTimeout * 1000 : 1,
    keepAliveMaxTimeout: keepalive ? ka.idleTimeout * 1000 : 1,
    maxRequestsPerClient: ka.requests > 0 ? ka.requests : 0,
    pipelining: keepalive ? 1 : 0,
    maxHeaderSize: opts.maxHeaderSize ?? 16 * 1024,
    allowH2: h2,
    // Timeouts are set per request from the route/upstream timeouts.
    headersTimeout: 0,
    bodyTimeout: 0,
  };
  // Pool reads the top-level useH2c when it builds the connector (h2Options.useH2c only reaches Clients).
  if (h2 && !tls) Object.assign(o, { useH2c: true });
  if (tls) {
    const t = upstream.tls;
    o.connect = {
      rejectUnauthorized: t.verify,
      ...(t.clientCert !== undefined && t.clientKey !== undefined ? { cert: t.clientCert, key: t.clientKey } : {}),
      ...(h2 ? { preferH2: true } : {}),
    } as Pool.Options['connect'];
  }
  return o;
}
