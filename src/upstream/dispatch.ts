// HTTP dispatcher to one upstream endpoint over its pooled undici connection(s): HTTP/1.1 keepalive, h2 over
// TLS, h2c. Request and response bodies stream with backpressure; response trailers are exposed after the
// body ends. Failures come back as values classified for the retry logic of the proxy. The endpoint's
// balancer hears begin() at dispatch and end() when the response body closes (or the attempt fails).
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Balancer, Endpoint } from './balancer.ts';
import { IDEMPOTENT, OWNED } from './h1/wire.ts';
import type { PoolHandle, UpstreamDispatcher } from './pools.ts';

export { Pools, type PoolHandle, type PoolsOptions } from './pools.ts';

export interface DispatchRequest {
  method: string;
  /** Path plus query string. */
  path: string;
  /** Final headers (host, x-forwarded-*, hop-by-hop removed). Headers undici manages itself are skipped. */
  headers: Record<string, string | string[]>;
  body: Readable | Buffer | null;
  /** TLS SNI; default: the Host header's name (APISIX `proxy_ssl_name $upstream_host`). */
  servername?: string;
}

export interface DispatchOptions {
  connectTimeoutMs: number;
  /** Longest gap between two request body chunks reaching the upstream. */
  sendTimeoutMs: number;
  /** Longest wait for the response headers and between two response body chunks. */
  readTimeoutMs: number;
}

/**
 * A response head from the upstream. Its body must be consumed exactly once, by pipeTo(sink), discard() or the
 * `body` Readable, or stopped with abort() (that is what ends the attempt for the balancer).
 */
export interface ProxiedResponse {
  readonly ok: true;
  readonly status: number;
  readonly headers: Record<string, string | string[]>;
  /** The body as a stream (made on first access; destroying it aborts the attempt). */
  readonly body: Readable;
  /** Response trailers; complete once the body has ended. */
  trailers(): Record<string, string>;
  pipeTo(sink: BodySink): void;
  resume(): void;
  discard(): void;
  abort(reason?: Error): void;
}

export type DispatchResult =
  | ProxiedResponse
  | {
      ok: false;
      kind: 'connect' | 'timeout' | 'reset' | 'protocol';
      message: string;
      /** False once request body bytes were streamed and cannot be replayed, or a non-idempotent request was sent. */
      retryable: boolean;
    };

export type DispatchFailure = Extract<DispatchResult, { ok: false }>;

/**
 * Who may cancel an attempt without an AbortSignal (no per-request AbortController or listener): dispatch()
 * puts the running attempt in `current` and clears it when the attempt settles (head or failure); the owner
 * sets `cancelled` and calls current.abort() when its client goes away.
 */
export interface AttemptOwner {
  current: { abort(reason?: Error): void } | null;
  cancelled: boolean;
  /** Milliseconds from the dispatch to its response head or failure, set when the attempt settles. */
  upstreamLatencyMs: number;
}

/** Headers undici rejects or manages itself; a proxy never forwards them as-is (the h1 client's own set). */
const SKIP_HEADERS = OWNED;
const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
]);
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
const RESET_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE', 'UND_ERR_CLOSED', 'ERR_HTTP2_STREAM_ERROR', 'ERR_HTTP2_SESSION_ERROR', 'ERR_HTTP2_GOAWAY_SESSION']);

/** Streams a Readable request body to undici, timing the gap between chunks (send timeout). */
class BodyPump {
  started = false;
  timedOut = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly src: Readable;
  private readonly timeoutMs: number;
  private readonly exchange: Exchange;

  constructor(src: Readable, timeoutMs: number, exchange: Exchange) {
    this.src = src;
    this.timeoutMs = timeoutMs;
    this.exchange = exchange;
  }

  /** The source is not destroyed when the upstream stops early: the caller still owns the client stream. */
  async *chunks(): AsyncGenerator<Buffer> {
    this.started = true;
    this.arm();
    try {
      for await (const chunk of this.src.iterator({ destroyOnReturn: false })) {
        this.arm();
        yield chunk as Buffer;
      }
    } finally {
      this.stop();
    }
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(): void {
    if (this.timeoutMs <= 0) return;
    if (this.timer) {
      this.timer.refresh();
      return;
    }
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.exchange.abort(new Error('upstream send timeout'));
    }, this.timeoutMs);
  }
}

/**
 * Where a proxied response body goes chunk by chunk, with no stream in between (see ProxiedResponse.pipeTo).
 * Calls arrive in order: write* then exactly one of end / error.
 */
export interface BodySink {
  /** False asks for backpressure: the upstream is paused until ProxiedResponse.resume(). */
  write(chunk: Buffer): boolean;
  /** The body is complete; `trailers` may be empty. */
  end(trailers: Record<string, string>): void;
  /** The upstream failed mid-body (reset, read timeout, protocol error). */
  error(err: Error): void;
}

const EMPTY_TRAILERS: Record<string, string> = Object.freeze({}) as Record<string, string>;
/** Chunks that arrive before the consumer attaches are held up to this many bytes, then the upstream pauses. */
const PENDING_LIMIT = 64 * 1024;

/** Body state of a response: still flowing, ended (trailers known), failed, or aborted by the consumer. */
const FLOWING = 0;
const ENDED = 1;
const FAILED = 2;
const ABORTED = 3;

/**
 * One attempt: the undici dispatch handler (no Readable, no promise per chunk) and, once the head arrived, the
 * successful DispatchResult itself. The body goes to one consumer: pipeTo(sink) (the proxy's fast path) or the
 * `body` Readable (made on first access). The balancer hears end() exactly once.
 */
class Exchange implements Dispatcher.DispatchHandler {
  readonly ok = true;
  status = 0;
  headers: Record<string, string | string[]> = {};
  private readonly balancer: Balancer;
  private readonly endpoint: Endpoint;
  private readonly start: number;
  private readonly method: string;
  private readonly signal: AbortSignal | undefined;
  private readonly owner: AttemptOwner | undefined;
  private settle: ((r: DispatchResult) => void) | null = null;
  pump: BodyPump | null = null;
  private controller: Dispatcher.DispatchController | null = null;
  private abortReason: Error | null = null;
  private headed = false;
  private state = FLOWING;
  private failure: Error | null = null;
  private trailerMap: Record<string, string> = EMPTY_TRAILERS;
  private pending: Buffer[] | null = null;
  private pendingBytes = 0;
  private sink: BodySink | null = null;
  private stream: Readable | null = null;
  private latencyMs = 0;
  private reported = false;
  private unlink: (() => void) | null = null;

  constructor(balancer: Balancer, endpoint: Endpoint, method: string, signal: AbortSignal | undefined, owner: AttemptOwner | undefined) {
    this.balancer = balancer;
    this.endpoint = endpoint;
    this.method = method;
    this.signal = signal;
    this.owner = owner;
    this.start = performance.now();
  }

  run(dispatcher: UpstreamDispatcher, options: Dispatcher.DispatchOptions): Promise<DispatchResult> {
    if (this.owner !== undefined) this.owner.current = this;
    const signal = this.signal;
    if (signal !== undefined) {
      if (signal.aborted) this.abort(toError(signal.reason));
      else {
        const onAbort = (): void => this.abort(toError(signal.reason));
        signal.addEventListener('abort', onAbort, { once: true });
        this.unlink = () => signal.removeEventListener('abort', onAbort);
      }
    }
    const result = new Promise<DispatchResult>((resolve) => {
      this.settle = resolve;
    });
    dispatcher.dispatch(options, this);
    return result;
  }

  // undici handler -----------------------------------------------------------------------------------------

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abortReason !== null) controller.abort(this.abortReason);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    // 1xx (100-continue, 103 Early Hints) are not forwarded.
    if (statusCode < 200 || this.headed) return;
    this.controller = controller;
    this.headed = true;
    this.status = statusCode;
    this.headers = headers as Record<string, string | string[]>;
    this.latencyMs = performance.now() - this.start;
    const owner = this.owner;
    if (owner !== undefined) {
      owner.current = null;
      owner.upstreamLatencyMs = this.latencyMs;
    }
    const settle = this.settle!;
    this.settle = null;
    settle(this);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    // hot path
    if (this.state !== FLOWING) return;
    const sink = this.sink;
    if (sink !== null) {
      if (!sink.write(chunk)) controller.pause();
      return;
    }
    if (this.pending === null) this.pending = [];
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes > PENDING_LIMIT) controller.pause();
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: Record<string, string | string[] | undefined>): void {
    if (this.state !== FLOWING) return;
    this.state = ENDED;
    if (trailers !== null && typeof trailers === 'object') {
      for (const k in trailers) {
        const v = trailers[k];
        if (v === undefined) continue;
        if (this.trailerMap === EMPTY_TRAILERS) this.trailerMap = {};
        this.trailerMap[k] = Array.isArray(v) ? v.join(', ') : v;
      }
    }
    this.report(false);
    if (this.sink !== null) this.sink.end(this.trailerMap);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.pump?.stop();
    if (!this.headed) {
      this.headed = true;
      this.unlink?.();
      const latencyMs = performance.now() - this.start;
      this.balancer.end?.(this.endpoint, { latencyMs, failed: true });
      this.reported = true;
      const owner = this.owner;
      if (owner !== undefined) {
        owner.current = null;
        owner.upstreamLatencyMs = latencyMs;
      }
      const settle = this.settle;
      this.settle = null;
      settle?.(classify(err, this.method, this.pump, this.signal, this.owner));
      return;
    }
    if (this.state !== FLOWING) return;
    this.state = FAILED;
    this.failure = err;
    this.report(true);
    if (this.sink !== null) this.sink.error(err);
  }

  // DispatchResult (ok) -------------------------------------------------------------------------------------

  /** Response trailers; complete once the body has ended. */
  trailers(): Record<string, string> {
    return this.trailerMap;
  }

  /** Sends the body to `sink` (at most one consumer); what arrived before is written first, synchronously. */
  pipeTo(sink: BodySink): void {
    // hot path
    this.sink = sink;
    const pending = this.pending;
    if (pending !== null) {
      this.pending = null;
      this.pendingBytes = 0;
      let more = true;
      for (let i = 0; i < pending.length; i++) more = sink.write(pending[i]!);
      if (more && this.state === FLOWING) this.controller?.resume();
    }
    if (this.state === ENDED) sink.end(this.trailerMap);
    else if (this.state === FAILED) sink.error(this.failure!);
  }

  /** Continues a body paused by a false BodySink.write. */
  resume(): void {
    if (this.state === FLOWING) this.controller?.resume();
  }

  /** Reads and drops the rest of the body (the connection stays reusable). */
  discard(): void {
    this.pipeTo(DISCARD);
  }

  /** Stops the attempt: before the head it fails (reset), afterwards the body is cut off. */
  abort(reason?: Error): void {
    const err = reason ?? new Error('request aborted');
    if (!this.headed) {
      this.abortReason = err;
      this.controller?.abort(err);
      return;
    }
    if (this.state !== FLOWING) return;
    this.state = ABORTED;
    this.pending = null;
    this.report(false);
    this.controller?.abort(err);
  }

  /** The body as a Readable, for consumers that want a stream (made on first access). */
  get body(): Readable {
    if (this.stream === null) {
      const stream = new Readable({ read: () => this.resume() });
      stream.once('close', () => this.abort());
      this.stream = stream;
      this.pipeTo({
        write: (chunk) => stream.push(chunk),
        end: () => {
          stream.push(null);
        },
        error: (err) => {
          stream.destroy(err);
        },
      });
    }
    return this.stream;
  }

  private report(failed: boolean): void {
    if (this.reported) return;
    this.reported = true;
    this.unlink?.();
    this.balancer.end?.(this.endpoint, { latencyMs: this.latencyMs, failed });
  }
}

const DISCARD: BodySink = {
  write: () => true,
  end: () => undefined,
  error: () => undefined,
};

function toError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error('request aborted');
}

function finalHeaders(h: Record<string, string | string[]>): Record<string, string | string[]> {
  // hot path
  let out: Record<string, string | string[]> | null = null;
  for (const k in h) {
    if (SKIP_HEADERS.has(k.toLowerCase())) {
      if (out === null) {
        out = {};
        for (const k2 in h) if (!SKIP_HEADERS.has(k2.toLowerCase())) out[k2] = h[k2]!;
      }
      break;
    }
  }
  return out ?? h;
}

export function dispatch(
  pool: PoolHandle,
  req: DispatchRequest,
  opts: DispatchOptions,
  signal?: AbortSignal,
  owner?: AttemptOwner,
): Promise<DispatchResult> {
  // hot path
  const balancer = pool.upstream.balancer;
  balancer.begin?.(pool.endpoint);
  const exchange = new Exchange(balancer, pool.endpoint, req.method, signal, owner);
  const src = req.body;
  const pump = src !== null && !Buffer.isBuffer(src) ? new BodyPump(src, opts.sendTimeoutMs, exchange) : null;
  exchange.pump = pump;
  const options: Dispatcher.DispatchOptions & { servername?: string } = {
    method: req.method as Dispatcher.HttpMethod,
    path: req.path,
    headers: pool.ownsHeaders ? req.headers : finalHeaders(req.headers),
    // undici accepts any AsyncIterable as a request body (documented in its Dispatcher API).
    body: pump !== null ? (pump.chunks() as unknown as Readable) : src,
    headersTimeout: opts.readTimeoutMs,
    bodyTimeout: opts.readTimeoutMs,
  };
  if (req.servername !== undefined) options.servername = req.servername;
  return exchange.run(pool.dispatcher, options);
}

function classify(err: unknown, method: string, pump: BodyPump | null, signal?: AbortSignal, owner?: AttemptOwner): DispatchFailure {
  const e = err as { code?: string; message?: string; name?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code ?? '';
  const message = e.message ?? String(err);
  const replayable = pump === null || !pump.started;
  const resendable = replayable && IDEMPOTENT.has(method.toUpperCase());
  if (pump?.timedOut) return { ok: false, kind: 'timeout', message: 'upstream send timeout', retryable: false };
  if (signal?.aborted || owner?.cancelled) return { ok: false, kind: 'reset', message: 'request aborted', retryable: false };
  if (CONNECT_CODES.has(code) || code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS')) {
    return { ok: false, kind: 'connect', message, retryable: replayable };
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return { ok: false, kind: 'timeout', message, retryable: replayable };
  if (TIMEOUT_CODES.has(code)) return { ok: false, kind: 'timeout', message, retryable: resendable };
  if (RESET_CODES.has(code)) return { ok: false, kind: 'reset', message, retryable: resendable };
  return { ok: false, kind: 'protocol', message, retryable: false };
}
