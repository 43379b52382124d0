// One multiplexed connection to a Dubbo provider: many calls in flight, matched to responses by the request
// id this connection assigns. Heartbeats are sent after `heartbeatMs` without reads and the provider's are
// answered; a connection that stays silent for three heartbeat periods is closed. A closed connection (error,
// bad frame, provider gone, connect failure) fails every call in flight with one clear error.
import net from 'node:net';
import type { Logger } from '../../src/observability/logger.ts';
import {
  FLAG_EVENT,
  HEADER_LENGTH,
  encodeHeartbeat,
  encodeHeartbeatResponse,
  isEvent,
  isRequest,
  isTwoWay,
  serializationOf,
  writeHeader,
  type Frame,
} from './codec.ts';
import { FrameDecoder } from './frame-decoder.ts';

export type TransportCode = 'timeout' | 'connect_failed' | 'connection_closed' | 'overloaded' | 'bad_frame' | 'closed';

export interface TransportError {
  readonly code: TransportCode;
  readonly message: string;
}

export type RawReply = { readonly ok: true; readonly frame: Frame } | { readonly ok: false; readonly error: TransportError };

/** Receives replies; `tag` is what the caller passed to send (no closure per call). */
export interface ReplyHandler<T = unknown> {
  onReply(reply: RawReply, tag: T): void;
}

interface Pending {
  readonly handler: ReplyHandler<any>;
  readonly tag: unknown;
  readonly timer: NodeJS.Timeout;
}

export interface ConnectionOptions {
  readonly host: string;
  readonly port: number;
  readonly connectTimeoutMs: number;
  readonly heartbeatMs: number;
  readonly maxFrameSize: number;
  readonly logger: Logger;
  readonly onClose: (c: DubboConnection) => void;
}

function onCallTimeout(conn: DubboConnection, id: number): void {
  conn.expire(id);
}

export class DubboConnection {
  readonly key: string;
  private readonly socket: net.Socket;
  private readonly decoder: FrameDecoder;
  private readonly pending = new Map<number, Pending>();
  private readonly opts: ConnectionOptions;
  private nextId = 1;
  private connected = false;
  private closedWith: TransportError | null = null;
  private lastRead = Date.now();
  /** Last time a call started or ended (idle eviction). */
  lastUsed = Date.now();
  private readonly connectTimer: NodeJS.Timeout;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(opts: ConnectionOptions) {
    this.opts = opts;
    this.key = `${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`;
    this.decoder = new FrameDecoder(opts.maxFrameSize);
    this.socket = net.connect({ host: opts.host, port: opts.port, noDelay: true });
    this.connectTimer = setTimeout(() => this.close({ code: 'connect_failed', message: `connect to dubbo provider ${this.key} timed out after ${opts.connectTimeoutMs} ms` }), opts.connectTimeoutMs);
    this.socket.once('connect', () => {
      this.connected = true;
      this.lastRead = Date.now();
      clearTimeout(this.connectTimer);
    });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (err) =>
      this.close({
        code: this.connected ? 'connection_closed' : 'connect_failed',
        message: this.connected ? `dubbo provider ${this.key} connection failed: ${err.message}` : `connect to dubbo provider ${this.key} failed: ${err.message}`,
      }),
    );
    this.socket.on('close', () => this.close({ code: 'connection_closed', message: `dubbo provider ${this.key} closed the connection` }));
    this.heartbeat = setInterval(() => this.tick(), Math.max(10, opts.heartbeatMs));
    this.heartbeat.unref();
  }

  get inFlight(): number {
    return this.pending.size;
  }

  get closed(): boolean {
    return this.closedWith !== null;
  }

  /**
   * Sends a two-way request (the request id in the header is this connection's), or a one-way request
   * when `handler` is null. `flags` are the client's (request, two-way, serialization) bits.
   */
  send<T>(flags: number, body: Buffer, timeoutMs: number, handler: ReplyHandler<T> | null, tag: T): void {
    if (this.closedWith !== null) {
      handler?.onReply({ ok: false, error: this.closedWith }, tag);
      return;
    }
    const id = this.nextId++;
    this.lastUsed = Date.now();
    if (handler !== null) {
      const timer = setTimeout(onCallTimeout, timeoutMs, this, id);
      this.pending.set(id, { handler, tag, timer });
    }
    const header = Buffer.allocUnsafe(HEADER_LENGTH);
    writeHeader(header, 0, flags, 0, BigInt(id), body.length);
    this.socket.cork();
    this.socket.write(header);
    this.socket.write(body);
    this.socket.uncork();
  }

  /** A call's timer fired: the call fails with a timeout; a late response is dropped. */
  expire(id: number): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    this.lastUsed = Date.now();
    p.handler.onReply({ ok: false, error: { code: 'timeout', message: `dubbo call to ${this.key} timed out` } }, p.tag);
  }

  close(reason: TransportError = { code: 'closed', message: `dubbo connection to ${this.key} closed by the gateway` }): void {
    if (this.closedWith !== null) return;
    this.closedWith = reason;
    clearTimeout(this.connectTimer);
    clearInterval(this.heartbeat);
    this.socket.destroy();
    const calls = [...this.pending.values()];
    this.pending.clear();
    if (calls.length > 0) this.opts.logger.warn({ provider: this.key, reason: reason.message, inFlight: calls.length }, 'dubbo provider connection closed with calls in flight');
    const error: TransportError = calls.length > 0 ? { code: reason.code, message: `${reason.message} (${calls.length} calls in flight)` } : reason;
    for (const p of calls) {
      clearTimeout(p.timer);
      p.handler.onReply({ ok: false, error }, p.tag);
    }
    this.opts.onClose(this);
  }

  private onData(chunk: Buffer): void {
    this.lastRead = Date.now();
    this.decoder.push(chunk);
    for (;;) {
      const step = this.decoder.next();
      if (step.kind === 'need') return;
      if (step.kind === 'error') {
        this.close({ code: 'bad_frame', message: `dubbo provider ${this.key} sent a bad frame: ${step.error.message}` });
        return;
      }
      this.onFrame(step.frame);
      if (this.closedWith !== null) return;
    }
  }

  private onFrame(frame: Frame): void {
    const flags = frame.flags;
    if (isRequest(flags)) {
      // Providers only send heartbeats; anything else from them is ignored.
      if (isEvent(flags) && isTwoWay(flags)) this.socket.write(encodeHeartbeatResponse(frame.requestId, serializationOf(flags)));
      return;
    }
    if ((flags & FLAG_EVENT) !== 0) return;
    const id = Number(frame.requestId);
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    this.lastUsed = Date.now();
    p.handler.onReply({ ok: true, frame }, p.tag);
  }

  private tick(): void {
    if (!this.connected || this.closedWith !== null) return;
    const silent = Date.now() - this.lastRead;
    if (silent >= 3 * this.opts.heartbeatMs) {
      this.close({ code: 'connection_closed', message: `dubbo provider ${this.key} missed heartbeats for ${silent} ms` });
      return;
    }
    if (silent >= this.opts.heartbeatMs) this.socket.write(encodeHeartbeat(BigInt(this.nextId++)));
  }
}
