// The socket-level HTTP/1.1 client to one upstream endpoint (`switchyard.upstream_http1_client: socket`): the
// subset of undici's Dispatcher that dispatch.ts uses (dispatch(options, handler), close, destroy) over
// keep-alive connections of our own (conn.ts), so a proxied request costs no undici Request object, no wasm
// parser copy and no timer. Keep-alive follows the upstream's keepalive_pool as nginx does: at most `size` idle
// connections, closed after `idle_timeout`, each used for at most `requests` requests.
import type { Dispatcher } from 'undici';
import net from 'node:net';
import { UpstreamConn } from './conn.ts';
import { closedError, destroyedError } from './wire.ts';

export interface H1PoolOptions {
  readonly host: string;
  readonly port: number;
  /** TLS to the upstream (scheme https), or null for cleartext. */
  readonly tls: { readonly rejectUnauthorized: boolean; readonly cert?: string; readonly key?: string } | null;
  readonly connectTimeoutMs: number;
  /** Idle connections kept for reuse (keepalive_pool.size); 0 sends `connection: close` on every request. */
  readonly keepAliveSize: number;
  /** keepalive_pool.idle_timeout in ms; 0 turns keep-alive off like a size of 0. */
  readonly idleTimeoutMs: number;
  /** Requests per connection (keepalive_pool.requests); 0: no limit. */
  readonly maxRequests: number;
  /** Cap on open connections; requests beyond it wait in arrival order. null: no cap. */
  readonly maxConnections: number | null;
  /** Largest response head, bytes. */
  readonly maxHeaderSize: number;
}

interface Waiting {
  opts: Dispatcher.DispatchOptions;
  handler: Dispatcher.DispatchHandler;
  name: string | null;
  retried: boolean;
}

/** The controller handed to a handler failed before any connection took its request. */
const DETACHED: Dispatcher.DispatchController = {
  aborted: false,
  paused: false,
  reason: null,
  abort: () => undefined,
  pause: () => undefined,
  resume: () => undefined,
};

const MAX_SESSIONS = 100;

export class H1Pool {
  readonly opts: H1PoolOptions;
  /** Host header for a request that has none (undici's: the origin, without a default port). */
  readonly hostHeader: string;
  readonly idleTimeoutMs: number;
  private readonly keepAlive: boolean;
  private readonly conns = new Set<UpstreamConn>();
  /** Idle connections, most recently used last (taken first: the likeliest to be still open upstream). */
  private readonly idle: UpstreamConn[] = [];
  private readonly waiting: Waiting[] = [];
  /** Connections still connecting whose request was cancelled before anything was sent: the next request's. */
  private readonly spares: UpstreamConn[] = [];
  private closing = false;
  private destroyed = false;
  private readonly closeWaiters: (() => void)[] = [];
  private readonly sessions = new Map<string, Buffer>();
  private lastHost: unknown = undefined;
  private lastName: string | null = null;

  constructor(opts: H1PoolOptions) {
    this.opts = opts;
    this.keepAlive = opts.keepAliveSize > 0 && opts.idleTimeoutMs > 0;
    this.idleTimeoutMs = opts.idleTimeoutMs;
    const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    this.hostHeader = opts.port === (opts.tls !== null ? 443 : 80) ? host : `${host}:${opts.port}`;
  }

  // Dispatcher -----------------------------------------------------------------------------------------------

  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // hot path
    if (this.closing) {
      handler.onResponseError?.(DETACHED, this.destroyed ? destroyedError() : closedError());
      return false;
    }
    this.start(opts, handler, this.opts.tls === null ? null : this.servernameOf(opts), false);
    return true;
  }

  /** Finishes running and queued requests, closes idle connections, then resolves. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      for (const c of this.idle.slice()) c.destroy();
    }
    return this.settled();
  }

  /** Fails every running and queued request (UND_ERR_DESTROYED) and closes every connection. */
  destroy(): Promise<void> {
    this.closing = true;
    if (!this.destroyed) {
      this.destroyed = true;
      const err = destroyedError();
      const queued = this.waiting.splice(0);
      for (const w of queued) w.handler.onResponseError?.(DETACHED, err);
      for (const c of [...this.conns]) c.terminate(err);
    }
    return this.settled();
  }

  // Connections ----------------------------------------------------------------------------------------------

  private start(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler, name: string | null, retried: boolean): void {
    // hot path
    const c = this.takeIdle(name) ?? (this.spares.length > 0 ? this.takeSpare(name) : null);
    if (c !== null) c.assign(opts, handler, retried);
    else if (this.room()) this.open(name).assign(opts, handler, retried);
    else this.waiting.push({ opts, handler, name, retried });
  }

  /**
   * Sends a request again on a fresh connection after a reused one died under it (conn.ts `lost`). False when
   * the pool is closing: the caller fails the request instead.
   */
  redispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.closing) return false;
    const name = this.opts.tls === null ? null : this.servernameOf(opts);
    if (this.room()) this.open(name).assign(opts, handler, true);
    else this.waiting.unshift({ opts, handler, name, retried: true });
    return true;
  }

  /** Whether request number `n` of a connection must be its last (`connection: close`). */
  lastRequest(n: number): boolean {
    return !this.keepAlive || (this.opts.maxRequests > 0 && n >= this.opts.maxRequests);
  }

  /** A connection finished its request and may carry another: a waiting one, or it idles (or closes). */
  free(c: UpstreamConn): void {
    // hot path
    if (this.waiting.length > 0) {
      const i = this.waitingFor(c.servername);
      if (i >= 0) {
        const w = this.waiting.splice(i, 1)[0]!;
        c.assign(w.opts, w.handler, w.retried);
      } else {
        // Waiting requests need another TLS name: this slot goes to a new connection for them.
        c.destroy();
      }
      return;
    }
    if (this.closing || !this.keepAlive || this.idle.length >= this.opts.keepAliveSize) {
      c.destroy();
      return;
    }
    c.parkIdle();
    this.idle.push(c);
  }

  /** A connecting connection lost its request before sending anything: a waiting request takes it, or the next. */
  spare(c: UpstreamConn): void {
    const i = this.closing ? -1 : this.waitingFor(c.servername);
    if (i >= 0) {
      const w = this.waiting.splice(i, 1)[0]!;
      c.assign(w.opts, w.handler, w.retried);
    } else this.spares.push(c);
  }

  /** A spare connection connected (it goes to free()) or closed. */
  unspare(c: UpstreamConn): void {
    const i = this.spares.indexOf(c);
    if (i >= 0) this.spares.splice(i, 1);
  }

  private takeSpare(name: string | null): UpstreamConn | null {
    const s = this.spares;
    for (let i = 0; i < s.length; i++) {
      if (s[i]!.servername !== name) continue;
      return s.splice(i, 1)[0]!;
    }
    return null;
  }

  /** Takes an idle connection out of the idle list (it is closing). */
  unidle(c: UpstreamConn): void {
    const i = this.idle.lastIndexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
  }

  /** A connection closed. */
  gone(c: UpstreamConn): void {
    this.conns.delete(c);
    this.unidle(c);
    if (this.spares.length > 0) this.unspare(c);
    if (this.closing && this.conns.size === 0 && this.waiting.length === 0) {
      const w = this.closeWaiters.splice(0);
      for (const resolve of w) resolve();
    }
  }

  /** Opens connections for waiting requests while there is room. */
  pump(): void {
    while (this.waiting.length > 0 && this.room() && !this.destroyed) {
      const w = this.waiting.shift()!;
      this.open(w.name).assign(w.opts, w.handler, w.retried);
    }
  }

  /** The newest TLS session ticket for `name`, to resume the next handshake. */
  session(name: string | null): Buffer | undefined {
    return this.sessions.get(name ?? '');
  }

  keepSession(name: string | null, ticket: Buffer): void {
    const key = name ?? '';
    this.sessions.delete(key);
    if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!);
    this.sessions.set(key, ticket);
  }

  /** Open connections (tests and diagnostics). */
  get size(): number {
    return this.conns.size;
  }

  private settled(): Promise<void> {
    if (this.conns.size === 0 && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.closeWaiters.push(resolve);
    });
  }

  private room(): boolean {
    const max = this.opts.maxConnections;
    return max === null || this.conns.size < max;
  }

  private open(name: string | null): UpstreamConn {
    const c = new UpstreamConn(this, name);
    this.conns.add(c);
    return c;
  }

  private takeIdle(name: string | null): UpstreamConn | null {
    // hot path
    const idle = this.idle;
    for (let i = idle.length - 1; i >= 0; i--) {
      const c = idle[i]!;
      if (c.servername !== name) continue;
      if (i === idle.length - 1) idle.pop();
      else idle.splice(i, 1);
      return c;
    }
    return null;
  }

  private waitingFor(name: string | null): number {
    const w = this.waiting;
    for (let i = 0; i < w.length; i++) if (w[i]!.name === name) return i;
    return -1;
  }

  /**
   * TLS SNI of a request, as undici derives it: the `servername` option, else the Host header's name; none for
   * an IP address. Connections are opened per name and only reused for requests of the same name.
   */
  private servernameOf(opts: Dispatcher.DispatchOptions): string | null {
    const explicit = (opts as { servername?: string }).servername;
    if (explicit !== undefined && explicit !== '') return net.isIP(explicit) !== 0 ? null : explicit;
    const headers = opts.headers as Record<string, string | string[] | undefined> | null | undefined;
    const host = headers?.host ?? this.opts.host;
    if (host === this.lastHost) return this.lastName;
    const h = Array.isArray(host) ? host[0]! : host;
    let name: string;
    if (h.startsWith('[')) name = '';
    else {
      const colon = h.indexOf(':');
      name = colon >= 0 && h.indexOf(':', colon + 1) < 0 ? h.slice(0, colon) : h;
    }
    this.lastHost = host;
    this.lastName = name === '' || net.isIP(name) !== 0 ? null : name;
    return this.lastName;
  }
}
