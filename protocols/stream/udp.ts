// UDP stream proxy: one dgram socket per listener and a session table keyed by the client's ip:port. A
// session owns a connected dgram socket to the picked node; replies go back to that client through the
// listener socket. Sessions expire after an idle period; the table is bounded (least recently active client
// evicted first). Route matching and preread plugins are the same as for TCP (the first datagram is what a
// plugin can peek).
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Balancer, Endpoint } from '../../src/upstream/balancer.ts';
import { normalizeAddr } from '../../stream-routes/router.ts';
import type { StreamRoute, StreamRuntime } from '../../stream-routes/types.ts';
import { admit, logSession } from './admission.ts';
import { splitHostPort, type UdpListenSpec } from './conf.ts';
import { UDP_MAX_PENDING, UDP_MAX_SESSIONS, type SessionDeps } from './options.ts';
import { StreamSession } from './session.ts';

interface UdpSession {
  readonly key: string;
  readonly clientAddr: string;
  readonly clientPort: number;
  readonly ctx: StreamSession;
  readonly first: Buffer;
  state: 'admitting' | 'open' | 'closed';
  pending: Buffer[] | null;
  upstream: dgram.Socket | null;
  lastActive: number;
  runtime: StreamRuntime | null;
  route: StreamRoute | null;
  endpoint: Endpoint | null;
  balancer: Balancer | null;
  startedAt: number;
}

/** Re-reads the state after an await (a session may be ended meanwhile). */
function isClosed(s: UdpSession): boolean {
  return s.state === 'closed';
}

export interface UdpListenerOptions {
  /** Bound on concurrent sessions (default UDP_MAX_SESSIONS). */
  maxSessions?: number;
}

export class UdpListener {
  private readonly spec: UdpListenSpec;
  private readonly deps: SessionDeps;
  private readonly maxSessions: number;
  private readonly sessions = new Map<string, UdpSession>();
  private socket: dgram.Socket | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  private serverAddr = '';
  private serverPort = 0;

  constructor(spec: UdpListenSpec, deps: SessionDeps, opts: UdpListenerOptions = {}) {
    this.spec = spec;
    this.deps = deps;
    this.maxSessions = opts.maxSessions ?? UDP_MAX_SESSIONS;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  async listen(): Promise<void> {
    const hp = splitHostPort(this.spec.addr);
    if (hp === null) throw new Error(`invalid udp listen address ${this.spec.addr}`);
    const sock = dgram.createSocket({ type: isIPv6(hp.host) ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(hp.port, hp.host, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    sock.on('error', (err) => this.deps.logger.error({ addr: this.spec.addr, err: err.message }, 'udp listener error'));
    sock.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    const a = sock.address();
    this.serverAddr = normalizeAddr(a.address);
    this.serverPort = a.port;
    this.socket = sock;
    const idle = this.deps.timeouts.udpIdleMs;
    this.sweeper = setInterval(() => this.sweep(), Math.max(20, Math.min(idle / 4, 5000)));
    this.sweeper.unref();
  }

  address(): { host: string; port: number } {
    return { host: this.serverAddr, port: this.serverPort };
  }

  /** Graceful: stop receiving and let sessions expire (bounded by drainMs); otherwise drop them now. */
  async close(graceful: boolean): Promise<void> {
    const sock = this.socket;
    if (sock === null) return;
    this.socket = null;
    if (graceful) {
      const deadline = Date.now() + Math.min(this.deps.timeouts.drainMs, this.deps.timeouts.udpIdleMs);
      while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    }
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const s of [...this.sessions.values()]) this.end(s);
    await new Promise<void>((resolve) => sock.close(() => resolve()));
  }

  // hot path
  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.socket === null) return;
    const key = rinfo.address + ':' + rinfo.port;
    const s = this.sessions.get(key);
    if (s !== undefined) {
      // Re-insert: the Map's order is then least recently active first (eviction order).
      this.sessions.delete(key);
      this.sessions.set(key, s);
      s.lastActive = Date.now();
      s.ctx.bytesIn += msg.length;
      if (s.state === 'open') s.upstream!.send(msg);
      else if (s.state === 'admitting' && s.pending!.length < UDP_MAX_PENDING) s.pending!.push(msg);
      return;
    }
    this.open(key, msg, rinfo);
  }

  private open(key: string, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.sessions.size >= this.maxSessions) {
      const oldest = this.sessions.values().next().value;
      if (oldest !== undefined) this.end(oldest);
    }
    const ctx = new StreamSession({
      protocol: 'udp',
      remoteAddr: normalizeAddr(rinfo.address),
      remotePort: rinfo.port,
      serverAddr: this.serverAddr,
      serverPort: this.serverPort,
      buffer: { peeked: () => msg },
      peekTimeoutMs: 0,
    });
    ctx.bytesIn = msg.length;
    const s: UdpSession = {
      key,
      clientAddr: rinfo.address,
      clientPort: rinfo.port,
      ctx,
      first: msg,
      state: 'admitting',
      pending: [],
      upstream: null,
      lastActive: Date.now(),
      runtime: null,
      route: null,
      endpoint: null,
      balancer: null,
      startedAt: performance.now(),
    };
    this.sessions.set(key, s);
    this.admit(s).catch((err: unknown) => {
      this.deps.logger.error({ err: (err as Error)?.message ?? String(err) }, 'udp session failed');
      this.end(s);
    });
  }

  private async admit(s: UdpSession): Promise<void> {
    const runtime = this.deps.getRuntime();
    if (runtime === null) {
      this.deps.logger.warn('udp datagram dropped: configuration not loaded yet');
      this.end(s);
      return;
    }
    s.runtime = runtime;
    const adm = await admit(runtime, s.ctx);
    if (isClosed(s)) return;
    s.route = adm.route;
    if (!adm.ok) {
      this.deps.logger.info({ remote: s.ctx.remoteAddr, port: this.serverPort, route: s.ctx.routeId || undefined, reason: adm.reason }, 'udp session closed');
      this.end(s);
      return;
    }
    const pick = adm.upstream.pick({ vars: s.ctx.vars, tried: null });
    if (!pick.ok) {
      s.ctx.status = 502;
      this.deps.logger.warn({ route: s.ctx.routeId, reason: pick.reason }, 'udp session closed: no upstream node');
      this.end(s);
      return;
    }
    const ep = pick.endpoint;
    s.endpoint = ep;
    s.balancer = adm.upstream.balancer;
    s.balancer.begin?.(ep);
    s.ctx.upstreamAddr = ep.key;
    const up = dgram.createSocket({ type: isIPv6(ep.host) ? 'udp6' : 'udp4' });
    s.upstream = up;
    up.on('error', (err) => {
      s.ctx.status = 502;
      this.deps.logger.warn({ route: s.ctx.routeId, node: ep.key, err: err.message }, 'udp upstream error');
      this.end(s);
    });
    up.on('message', (reply) => {
      const listener = this.socket;
      if (listener === null || s.state !== 'open') return;
      s.lastActive = Date.now();
      s.ctx.bytesOut += reply.length;
      listener.send(reply, s.clientPort, s.clientAddr);
    });
    await new Promise<void>((resolve) => up.connect(ep.port, ep.host, () => resolve()));
    if (isClosed(s)) return;
    s.state = 'open';
    up.send(s.first);
    for (const m of s.pending!) up.send(m);
    s.pending = null;
  }

  private sweep(): void {
    const cutoff = Date.now() - this.deps.timeouts.udpIdleMs;
    for (const s of [...this.sessions.values()]) if (s.lastActive <= cutoff) this.end(s);
  }

  private end(s: UdpSession): void {
    if (isClosed(s)) return;
    const wasOpen = s.state === 'open';
    s.state = 'closed';
    s.pending = null;
    if (this.sessions.get(s.key) === s) this.sessions.delete(s.key);
    if (s.upstream !== null) {
      try {
        s.upstream.close();
      } catch {
        // already closed by an error
      }
    }
    if (s.endpoint !== null) s.balancer?.end?.(s.endpoint, { latencyMs: performance.now() - s.startedAt, failed: !wasOpen || s.ctx.status >= 500 });
    if (s.runtime !== null) logSession(s.runtime, s.route, s.ctx);
  }
}
