// The socket-level HTTP/1.1 engine (`switchyard.http1_engine: socket`, the default): takes accepted sockets
// (cleartext or TLS) from the HTTP listeners and serves them on the shared pipeline with llhttp (see
// src/http1/parser.ts), one connection object per socket (connection.ts) and one exchange object per request
// (exchange.ts). Timeouts are deadlines on the connections, checked by one sweep per engine (no timer per request
// or per connection): client_header_timeout for a head (408), client_body_timeout between body reads and for a
// blocked response, keepalive_timeout between requests.
import type { Socket } from 'node:net';
import type { TlsInfo } from '../../src/pipeline/downstream.ts';
import type { HttpPipeline } from '../../src/pipeline/pipeline.ts';
import { H1Conn } from './connection.ts';

export interface Http1Limits {
  max_header_size: number;
  max_headers_count: number;
  client_header_timeout: number;
  client_body_timeout: number;
  keepalive_timeout: number;
  graceful_shutdown_timeout: number;
}

export interface Http1EngineOptions {
  pipeline: HttpPipeline;
  limits: Http1Limits;
  /** `alt-svc` added to answers that have none (HTTP/3 on this port). */
  altSvc?: string;
  /** TLS facts of a request (protocols/http/tls-info.ts tlsInfoFor), injected so the folders stay independent. */
  tlsInfo(socket: Socket, authority: string | null): TlsInfo | null;
  /**
   * Takes a cleartext connection whose first bytes are the HTTP/2 preface (h2c prior knowledge), paused with
   * those bytes unshifted; needed when `accept` is asked to sniff.
   */
  h2c?: (socket: Socket) => void;
}

export class Http1Engine {
  readonly pipeline: HttpPipeline;
  readonly maxHeaderSize: number;
  /** max_headers_count as name/value slots: more fields than that answer 431. */
  readonly maxHeaderPairs: number;
  readonly headerTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly keepaliveTimeoutMs: number;
  readonly gracefulMs: number;
  readonly keepAliveLines: string;
  readonly altSvc: string | undefined;
  readonly tlsInfo: (socket: Socket, authority: string | null) => TlsInfo | null;
  readonly h2c: ((socket: Socket) => void) | undefined;
  /** Coarse clock (ms) advanced by the sweep; deadlines are compared against it. */
  clock = Date.now();
  closing = false;
  private readonly conns = new Set<H1Conn>();
  /** The last address strings seen: connections from one client, or to one local address, share one string. */
  private lastRemote = '';
  private lastLocal = '';
  private readonly sweeper: NodeJS.Timeout;

  constructor(opts: Http1EngineOptions) {
    const l = opts.limits;
    this.pipeline = opts.pipeline;
    this.maxHeaderSize = l.max_header_size;
    this.maxHeaderPairs = l.max_headers_count * 2;
    this.headerTimeoutMs = l.client_header_timeout * 1000;
    this.bodyTimeoutMs = l.client_body_timeout * 1000;
    this.keepaliveTimeoutMs = l.keepalive_timeout * 1000;
    this.gracefulMs = l.graceful_shutdown_timeout * 1000;
    this.keepAliveLines = `connection: keep-alive\r\nkeep-alive: timeout=${Math.round(l.keepalive_timeout)}\r\n`;
    this.altSvc = opts.altSvc;
    this.tlsInfo = opts.tlsInfo;
    this.h2c = opts.h2c;
    const shortest = Math.min(this.headerTimeoutMs, this.bodyTimeoutMs, this.keepaliveTimeoutMs);
    const tick = Math.max(50, Math.min(1000, Math.floor(shortest / 4)));
    this.sweeper = setInterval(sweep, tick, this);
    this.sweeper.unref();
  }

  /**
   * A connection accepted by a listener. With `sniffH2`, first bytes that start the HTTP/2 preface hand the
   * socket to `h2c` instead: the sniff costs the connection no timer or listener of its own
   * (client_header_timeout is the sweep's, as for a head).
   */
  accept(socket: Socket, sniffH2 = false): void {
    socket.setNoDelay(true);
    this.conns.add(new H1Conn(this, socket, sniffH2 && this.h2c !== undefined));
  }

  remoteAddr(addr: string): string {
    if (addr === this.lastRemote) return this.lastRemote;
    return (this.lastRemote = addr);
  }

  localAddr(addr: string): string {
    if (addr === this.lastLocal) return this.lastLocal;
    return (this.lastLocal = addr);
  }

  forget(c: H1Conn): void {
    this.conns.delete(c);
  }

  get connections(): number {
    return this.conns.size;
  }

  /** Advances the clock and expires connections whose deadline passed. */
  check(): void {
    const now = (this.clock = Date.now());
    for (const c of this.conns) {
      if (c.timeout !== 0 && c.deadline <= now) c.expire();
    }
  }

  /**
   * Graceful: idle connections close now, running exchanges answer with `connection: close` and close after
   * their response, whatever remains after graceful_shutdown_timeout is destroyed. Otherwise all close now.
   */
  async close(graceful: boolean): Promise<void> {
    this.closing = true;
    if (!graceful) {
      for (const c of this.conns) c.socket.destroy();
      clearInterval(this.sweeper);
      return;
    }
    for (const c of this.conns) if (c.cur === null) c.socket.end();
    const until = Date.now() + this.gracefulMs;
    while (this.conns.size > 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const c of this.conns) c.socket.destroy();
    clearInterval(this.sweeper);
  }
}

function sweep(engine: Http1Engine): void {
  engine.check();
}
