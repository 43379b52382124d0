// Attempts of a terminal plugin (one that calls the route's upstream itself from before_proxy and answers
// locally: dubbo-proxy, http-dubbo) run the way the pipeline's own dispatch runs them (src/upstream/proxy.ts):
// the first endpoint is the balancer's pick made before before_proxy; a failure that never reached the
// provider is retried on another endpoint while retryAllowed() says so (`retries`, `retry_timeout`), tried
// endpoints excluded; each attempt feeds the balancer (least_conn, ewma) and the passive health checks.
//
// The pipeline does not hand plugins its proxy job, so jobOf() recognises it structurally: the request's body
// source is the pipeline's Transaction, which is the ProxyJob of the request (upstream, pick context, deadlines,
// attempting()) and reaches the passive-health sink through its pipeline's options. When that shape is not
// there (no upstream on the route, or a context built elsewhere) runAttempts() returns null.
import type { Vars } from '../router/vars.ts';
import type { Endpoint } from '../upstream/balancer.ts';
import { retryAllowed, retryDeadline, type UpstreamOutcomes } from '../upstream/proxy.ts';
import { UpstreamRuntime } from '../upstream/upstream.ts';
import type { HttpContext } from './context.ts';

/** The pipeline's dispatch failure kinds (passive health counts them as tcp failures or timeouts). */
export type AttemptFailureKind = 'connect' | 'timeout' | 'reset' | 'protocol';

export type AttemptResult<T> =
  /** The provider answered; `status` is the HTTP status the answer maps to (passive health). */
  | { readonly ok: true; readonly status: number; readonly value: T }
  /** `retryable`: the call provably never reached the provider. */
  | { readonly ok: false; readonly kind: AttemptFailureKind; readonly retryable: boolean; readonly value: T };

/** The route's (or upstream's) timeouts, in milliseconds. */
export interface AttemptTimeouts {
  readonly connectMs: number;
  readonly sendMs: number;
  readonly readMs: number;
}

/** One attempt on one endpoint; `arg` carries the request so callers need no per-request closure. */
export type AttemptFn<A, T> = (endpoint: Endpoint, timeouts: AttemptTimeouts, arg: A) => Promise<AttemptResult<T>>;

export interface AttemptsRun<T> {
  /** The last attempt's value. */
  readonly value: T;
  readonly ok: boolean;
  readonly endpoint: Endpoint;
  /** nginx's $upstream_status of the failed attempts ("502, 504"), '' when none failed. */
  readonly failedStatuses: string;
}

interface PipelineJob {
  readonly upstream: UpstreamRuntime;
  readonly pickCtx: { readonly vars: Vars; tried: Set<string> | null };
  readonly connectTimeoutMs: number;
  readonly sendTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly cancelled: boolean;
  failedStatuses: string;
  attempting(endpoint: Endpoint): void;
  readonly pipeline?: { readonly opts?: { readonly outcomes?: UpstreamOutcomes } };
}

function jobOf(ctx: HttpContext): PipelineJob | null {
  const src = (ctx.request as { bodySource?: unknown }).bodySource;
  if (src === null || typeof src !== 'object') return null;
  const j = src as Partial<PipelineJob>;
  if (!(j.upstream instanceof UpstreamRuntime) || typeof j.attempting !== 'function' || typeof j.pickCtx !== 'object') return null;
  return j as PipelineJob;
}

function statusOf(kind: AttemptFailureKind): number {
  return kind === 'timeout' ? 504 : 502;
}

/**
 * Runs `fn` on the picked endpoint, then on others while failures are retryable. Null when the request has
 * no upstream to call (the pipeline then answers as for a route without upstream).
 */
export async function runAttempts<A, T>(ctx: HttpContext, fn: AttemptFn<A, T>, arg: A): Promise<AttemptsRun<T> | null> {
  const job = jobOf(ctx);
  if (job === null) return null;
  const upstream = job.upstream;
  let endpoint: Endpoint | undefined;
  for (const e of upstream.endpoints) if (e.key === ctx.upstreamAddr) endpoint = e;
  if (endpoint === undefined) return null;
  const timeouts: AttemptTimeouts = { connectMs: job.connectTimeoutMs, sendMs: job.sendTimeoutMs, readMs: job.readTimeoutMs };
  const outcomes = job.pipeline?.opts?.outcomes;
  const deadline = retryDeadline(upstream);
  for (let attempt = 0; ; attempt++) {
    job.attempting(endpoint);
    upstream.begin(endpoint);
    const started = performance.now();
    const r = await fn(endpoint, timeouts, arg);
    upstream.end(endpoint, { latencyMs: performance.now() - started, failed: !r.ok });
    // A request whose client left says nothing about the node's health.
    if (outcomes !== undefined && !job.cancelled) {
      if (r.ok) outcomes.status(upstream, endpoint, r.status);
      else outcomes.failure(upstream, endpoint, r.kind);
    }
    if (r.ok) return { value: r.value, ok: true, endpoint, failedStatuses: job.failedStatuses };
    const pickCtx = job.pickCtx;
    if (pickCtx.tried === null) pickCtx.tried = new Set();
    pickCtx.tried.add(endpoint.key);
    job.failedStatuses += `${job.failedStatuses === '' ? '' : ', '}${statusOf(r.kind)}`;
    const done = { value: r.value, ok: false, endpoint, failedStatuses: job.failedStatuses };
    if (!r.retryable || !retryAllowed(upstream, attempt, deadline, job.cancelled)) return done;
    const pick = upstream.pick(pickCtx);
    if (!pick.ok) return done;
    endpoint = pick.endpoint;
  }
}
