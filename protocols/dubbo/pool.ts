// Connections to one Dubbo provider (host:port). Calls go to the open connection with the fewest calls in
// flight; another connection is opened when every connection carries `multiplex` calls, up to
// `maxConnections`. Calls beyond `maxPending` in flight fail at once ('overloaded') instead of queueing
// without bound. Connections without calls for `idleTimeoutMs` are closed.
// callDubbo() is the typed entry point for HTTP-to-Dubbo plugins: it encodes the call, waits for the
// reply and decodes it into a DubboResult; every outcome, transport failures included, is a value.
import type { Logger } from '../../src/observability/logger.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import {
  DEFAULT_MAX_FRAME,
  FLAG_REQUEST,
  FLAG_TWO_WAY,
  HESSIAN2,
  decodeResponse,
  encodeRequestBody,
  type JavaException,
  type JavaValue,
} from './codec.ts';
import { DubboConnection, type RawReply, type ReplyHandler, type TransportCode } from './connection.ts';

export interface DubboPoolOptions {
  readonly host: string;
  readonly port: number;
  readonly connectTimeoutMs?: number;
  /** Calls in flight per connection before another connection is opened (APISIX upstream_multiplex_count). */
  readonly multiplex?: number;
  readonly maxConnections?: number;
  /** Bound on calls in flight over all connections of the pool. */
  readonly maxPending?: number;
  readonly heartbeatMs?: number;
  readonly idleTimeoutMs?: number;
  readonly maxFrameSize?: number;
  readonly logger?: Logger;
}

export const POOL_DEFAULTS = {
  connectTimeoutMs: 6_000,
  multiplex: 32,
  maxConnections: 8,
  maxPending: 10_000,
  heartbeatMs: 60_000,
  idleTimeoutMs: 60_000,
} as const;

export class DubboPool {
  readonly key: string;
  private readonly conns: DubboConnection[] = [];
  private readonly o: Required<Omit<DubboPoolOptions, 'logger'>> & { logger: Logger };
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(opts: DubboPoolOptions) {
    this.o = {
      connectTimeoutMs: opts.connectTimeoutMs ?? POOL_DEFAULTS.connectTimeoutMs,
      multiplex: opts.multiplex ?? POOL_DEFAULTS.multiplex,
      maxConnections: opts.maxConnections ?? POOL_DEFAULTS.maxConnections,
      maxPending: opts.maxPending ?? POOL_DEFAULTS.maxPending,
      heartbeatMs: opts.heartbeatMs ?? POOL_DEFAULTS.heartbeatMs,
      idleTimeoutMs: opts.idleTimeoutMs ?? POOL_DEFAULTS.idleTimeoutMs,
      maxFrameSize: opts.maxFrameSize ?? DEFAULT_MAX_FRAME,
      logger: opts.logger ?? silentLogger,
      host: opts.host,
      port: opts.port,
    };
    this.key = `${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`;
    this.sweeper = setInterval(() => this.sweep(), Math.max(10, Math.min(this.o.idleTimeoutMs, 5_000)));
    this.sweeper.unref();
  }

  get inFlight(): number {
    let n = 0;
    for (const c of this.conns) n += c.inFlight;
    return n;
  }

  get connections(): number {
    return this.conns.length;
  }

  /**
   * Sends a request body as-is (the L4 proxy forwards the client's bytes). Two-way when `handler` is set;
   * its onReply gets the provider's frame (request id already mapped back to the caller by the handler).
   */
  send<T>(flags: number, body: Buffer, timeoutMs: number, handler: ReplyHandler<T> | null, tag: T): void {
    // hot path
    if (this.closed) {
      handler?.onReply({ ok: false, error: { code: 'closed', message: `dubbo pool ${this.key} is closed` } }, tag);
      return;
    }
    if (handler !== null && this.inFlight >= this.o.maxPending) {
      handler.onReply({ ok: false, error: { code: 'overloaded', message: `dubbo provider ${this.key} has ${this.o.maxPending} calls in flight` } }, tag);
      return;
    }
    this.choose().send(flags, body, timeoutMs, handler, tag);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const c of [...this.conns]) c.close();
  }

  private choose(): DubboConnection {
    let best: DubboConnection | null = null;
    for (const c of this.conns) if (best === null || c.inFlight < best.inFlight) best = c;
    if (best !== null && (best.inFlight < this.o.multiplex || this.conns.length >= this.o.maxConnections)) return best;
    const c = new DubboConnection({
      host: this.o.host,
      port: this.o.port,
      connectTimeoutMs: this.o.connectTimeoutMs,
      heartbeatMs: this.o.heartbeatMs,
      maxFrameSize: this.o.maxFrameSize,
      logger: this.o.logger,
      onClose: (closed) => {
        const i = this.conns.indexOf(closed);
        if (i >= 0) this.conns.splice(i, 1);
      },
    });
    this.conns.push(c);
    return c;
  }

  private sweep(): void {
    const cutoff = Date.now() - this.o.idleTimeoutMs;
    for (const c of [...this.conns]) if (c.inFlight === 0 && c.lastUsed <= cutoff) c.close();
  }
}

export interface DubboCall {
  readonly service: string;
  readonly version?: string;
  readonly method: string;
  /** JVM parameter descriptor, e.g. "Ljava/lang/String;I". */
  readonly paramTypes: string;
  /** Plain JS values or hessian.js typed values `{$class, $}`. */
  readonly args: readonly JavaValue[];
  readonly attachments?: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
}

export type DubboResult =
  | { readonly ok: true; readonly kind: 'value'; readonly value: unknown; readonly attachments: Record<string, unknown> }
  | { readonly ok: true; readonly kind: 'null'; readonly attachments: Record<string, unknown> }
  /** The provider method threw. */
  | { readonly ok: false; readonly kind: 'exception'; readonly exception: JavaException; readonly attachments: Record<string, unknown> }
  /** The provider answered a non-OK status (e.g. 60 service not found) with this message. */
  | { readonly ok: false; readonly kind: 'status'; readonly status: number; readonly message: string }
  /** No usable answer: timeout, connection failure, overload, or an undecodable response. */
  | { readonly ok: false; readonly kind: 'transport'; readonly code: TransportCode | 'bad_request' | 'bad_response'; readonly message: string };

type Resolve = (r: DubboResult) => void;

const CALL_HANDLER: ReplyHandler<Resolve> = {
  onReply(reply: RawReply, resolve: Resolve): void {
    if (!reply.ok) {
      resolve({ ok: false, kind: 'transport', code: reply.error.code, message: reply.error.message });
      return;
    }
    const d = decodeResponse(reply.frame.status, reply.frame.body);
    if (!d.ok) {
      resolve({ ok: false, kind: 'transport', code: 'bad_response', message: d.reason });
      return;
    }
    const v = d.value;
    switch (v.kind) {
      case 'value':
        resolve({ ok: true, kind: 'value', value: v.value, attachments: v.attachments });
        return;
      case 'null':
        resolve({ ok: true, kind: 'null', attachments: v.attachments });
        return;
      case 'exception':
        resolve({ ok: false, kind: 'exception', exception: v.exception, attachments: v.attachments });
        return;
      default:
        resolve({ ok: false, kind: 'status', status: v.status, message: v.message });
    }
  },
};

/** One two-way hessian2 call over the pool; never rejects. */
export function callDubbo(pool: DubboPool, call: DubboCall): Promise<DubboResult> {
  let body: Buffer;
  try {
    body = encodeRequestBody(call);
  } catch (err) {
    return Promise.resolve({ ok: false, kind: 'transport', code: 'bad_request', message: `cannot serialize the call: ${(err as Error).message}` });
  }
  return new Promise<DubboResult>((resolve) => pool.send(FLAG_REQUEST | FLAG_TWO_WAY | HESSIAN2, body, call.timeoutMs, CALL_HANDLER, resolve));
}
