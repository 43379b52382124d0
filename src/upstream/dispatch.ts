// HTTP dispatcher to one upstream endpoint over its pooled undici connection(s): HTTP/1.1 keepalive, h2 over
// TLS, h2c. Request and response bodies stream with backpressure; response trailers are exposed after the
// body ends. Failures come back as values classified for the retry logic of the proxy. The endpoint's
// balancer hears begin() at dispatch and end() when the response body closes (or the attempt fails).
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Balancer, Endpoint } from './balancer.ts';
import type { PoolHandle } from './pools.ts';

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

export type DispatchResult =
  | {
      ok: true;
      status: number;
      headers: Record<string, string | string[]>;
      /** Must be consumed or destroyed by the caller (that is what ends the attempt for the balancer). */
      body: Readable;
      /** Response trailers; complete once the body has ended. */
      trailers: () => Record<string, string>;
    }
  | {
      ok: false;
      kind: 'connect' | 'timeout' | 'reset' | 'protocol';
      message: string;
      /** False once request body bytes were streamed and cannot be replayed, or a non-idempotent request was sent. */
      retryable: boolean;
    };

export type DispatchFailure = Extract<DispatchResult, { ok: false }>;

/** Headers undici rejects or manages itself; a proxy never forwards them as-is. */
const SKIP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'expect', 'proxy-connection']);
/** Methods nginx may resend to another upstream after the request was sent (proxy_next_upstream non_idempotent). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
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
  private readonly abort: AbortController;

  constructor(src: Readable, timeoutMs: number, abort: AbortController) {
    this.src = src;
    this.timeoutMs = timeoutMs;
    this.abort = abort;
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
      this.abort.abort(new Error('upstream send timeout'));
    }, this.timeoutMs);
  }
}

/** Reports the end of a successful attempt to the balancer when the response body closes. */
class Flight {
  private readonly balancer: Balancer;
  private readonly endpoint: Endpoint;
  private readonly latencyMs: number;
  private readonly unlink: (() => void) | null;
  private done = false;

  constructor(balancer: Balancer, endpoint: Endpoint, latencyMs: number, unlink: (() => void) | null) {
    this.balancer = balancer;
    this.endpoint = endpoint;
    this.latencyMs = latencyMs;
    this.unlink = unlink;
  }

  readonly finish = (err?: unknown): void => {
    if (this.done) return;
    this.done = true;
    this.unlink?.();
    this.balancer.end?.(this.endpoint, { latencyMs: this.latencyMs, failed: err instanceof Error });
  };
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

export async function dispatch(
  pool: PoolHandle,
  req: DispatchRequest,
  opts: DispatchOptions,
  signal?: AbortSignal,
): Promise<DispatchResult> {
  const balancer = pool.upstream.balancer;
  const endpoint = pool.endpoint;
  balancer.begin?.(endpoint);
  const start = performance.now();

  const src = req.body;
  const streaming = src !== null && !Buffer.isBuffer(src);
  let abort: AbortController | null = null;
  let unlink: (() => void) | null = null;
  if (streaming || signal) {
    const ac = new AbortController();
    abort = ac;
    if (signal) {
      if (signal.aborted) ac.abort(signal.reason);
      const onAbort = (): void => ac.abort(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      unlink = () => signal.removeEventListener('abort', onAbort);
    }
  }
  const pump = streaming ? new BodyPump(src, opts.sendTimeoutMs, abort!) : null;

  const options: Dispatcher.RequestOptions & { servername?: string } = {
    method: req.method as Dispatcher.HttpMethod,
    path: req.path,
    headers: finalHeaders(req.headers),
    // undici accepts any AsyncIterable as a request body (documented in its Dispatcher API).
    body: pump ? (pump.chunks() as unknown as Readable) : src,
    headersTimeout: opts.readTimeoutMs,
    bodyTimeout: opts.readTimeoutMs,
    signal: abort?.signal ?? null,
  };
  if (req.servername !== undefined) options.servername = req.servername;

  let res: Dispatcher.ResponseData;
  try {
    res = await pool.dispatcher.request(options);
  } catch (err) {
    pump?.stop();
    unlink?.();
    balancer.end?.(endpoint, { latencyMs: performance.now() - start, failed: true });
    return classify(err, req.method, pump, signal);
  }
  const flight = new Flight(balancer, endpoint, performance.now() - start, unlink);
  res.body.once('close', flight.finish);
  res.body.once('error', flight.finish);
  const trailers = res.trailers;
  return {
    ok: true,
    status: res.statusCode,
    headers: res.headers as Record<string, string | string[]>,
    body: res.body,
    trailers: () => trailers,
  };
}

function classify(err: unknown, method: string, pump: BodyPump | null, signal?: AbortSignal): DispatchFailure {
  const e = err as { code?: string; message?: string; name?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code ?? '';
  const message = e.message ?? String(err);
  const replayable = pump === null || !pump.started;
  const resendable = replayable && IDEMPOTENT.has(method.toUpperCase());
  if (pump?.timedOut) return { ok: false, kind: 'timeout', message: 'upstream send timeout', retryable: false };
  if (signal?.aborted) return { ok: false, kind: 'reset', message: 'request aborted', retryable: false };
  if (CONNECT_CODES.has(code) || code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS')) {
    return { ok: false, kind: 'connect', message, retryable: replayable };
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return { ok: false, kind: 'timeout', message, retryable: replayable };
  if (TIMEOUT_CODES.has(code)) return { ok: false, kind: 'timeout', message, retryable: resendable };
  if (RESET_CODES.has(code)) return { ok: false, kind: 'reset', message, retryable: resendable };
  return { ok: false, kind: 'protocol', message, retryable: false };
}
