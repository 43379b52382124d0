// Dispatch to an upstream as composed layers (undici's compose style): retries (APISIX `retries`,
// `retry_timeout`, which failures are retryable) around outcome reporting (passive health) around the pool
// dispatch with the attempt's deadlines. The layers are composed once per pipeline; per request they read a
// ProxyJob (no closures). The job owns the running attempt, so its client going away cancels it.
import type { Logger } from '../observability/logger.ts';
import { passiveStatusOfHead } from '../pipeline/grpc.ts';
import type { Endpoint, PickContext } from './balancer.ts';
import { dispatch, type AttemptOwner, type DispatchFailure, type DispatchRequest, type DispatchResult } from './dispatch.ts';
import type { UpstreamRuntime } from './upstream.ts';

/** Passive health: outcomes of upstream attempts (src/health/wiring.ts implements it). */
export interface UpstreamOutcomes {
  failure(upstream: UpstreamRuntime, endpoint: Endpoint, kind: string): void;
  status(upstream: UpstreamRuntime, endpoint: Endpoint, status: number): void;
}

/** One proxied request as the layers see it; the pipeline's per-request transaction implements it. */
export interface ProxyJob extends AttemptOwner {
  readonly upstream: UpstreamRuntime;
  /** Balancer input; `tried` collects failed endpoints so retries pick others (allocated on first failure). */
  readonly pickCtx: PickContext & { tried: Set<string> | null };
  readonly connectTimeoutMs: number;
  readonly sendTimeoutMs: number;
  readonly readTimeoutMs: number;
  /** Protocol override for this request (undefined: as the upstream configures). */
  readonly http2: boolean | undefined;
  /** The request for one endpoint (the Host header depends on it with pass_host: node). */
  requestFor(endpoint: Endpoint): DispatchRequest;
  /** Called before each attempt with the endpoint used (upstream_addr, balancer_ip). */
  attempting(endpoint: Endpoint): void;
  /** nginx's $upstream_status of the failed attempts so far ("502, 504"), maintained by the retry layer. */
  failedStatuses: string;
  /**
   * Set by the outcomes layer when a gRPC answer's status is still to come in its trailers (passiveStatusOfHead
   * in src/pipeline/grpc.ts): the endpoint that answered. The job reports that status to the pipeline's
   * outcomes once the trailers arrive, or a failure when the body breaks off first.
   */
  grpcPendingEndpoint: Endpoint | null;
}

export type Attempt = (job: ProxyJob, endpoint: Endpoint) => Promise<DispatchResult>;
export type Layer = (next: Attempt) => Attempt;

/**
 * The innermost step: the endpoint's pool, with the attempt's connect/send/read deadlines. Not async: it hands
 * on dispatch's promise, which clears job.current and sets job.upstreamLatencyMs itself when it settles.
 */
export const poolAttempt: Attempt = (job, endpoint) => {
  // hot path
  job.attempting(endpoint);
  return dispatch(
    job.upstream.pool(endpoint, job.connectTimeoutMs, job.http2),
    job.requestFor(endpoint),
    { connectTimeoutMs: job.connectTimeoutMs, sendTimeoutMs: job.sendTimeoutMs, readTimeoutMs: job.readTimeoutMs },
    undefined,
    job,
  );
};

/** Reports each attempt's outcome to passive health checks (balancer feedback is dispatch's own). */
export function outcomesLayer(sink: UpstreamOutcomes | undefined): Layer {
  if (sink === undefined) return (next) => next;
  return (next) => async (job, endpoint) => {
    const r = await next(job, endpoint);
    // A cancelled attempt says nothing about the node's health.
    if (job.cancelled) return r;
    if (r.ok) {
      const status = passiveStatusOfHead(r.status, r.headers);
      if (status >= 0) sink.status(job.upstream, endpoint, status);
      else job.grpcPendingEndpoint = endpoint;
    } else sink.failure(job.upstream, endpoint, r.kind);
    return r;
  };
}

function statusOf(f: DispatchFailure): number {
  return f.kind === 'timeout' ? 504 : 502;
}

/** When a request's retries stop (`retry_timeout` from its first attempt); 0: no time limit. */
export function retryDeadline(upstream: UpstreamRuntime): number {
  return upstream.retryTimeoutMs > 0 ? Date.now() + upstream.retryTimeoutMs : 0;
}

/**
 * The one retry rule of every upstream caller (this layer, the WebSocket tunnel, terminal plugins' attempts):
 * after failed attempt number `attempt` (0 for the first), another endpoint may be tried while `retries` (APISIX
 * default: nodes - 1) allows one more, `deadline` (retryDeadline) has not passed and the client is still there.
 * Whether the failure itself is retryable is the caller's to know.
 */
export function retryAllowed(upstream: UpstreamRuntime, attempt: number, deadline: number, cancelled: boolean): boolean {
  return !cancelled && attempt < upstream.retries && (deadline === 0 || Date.now() <= deadline);
}

/** Retries failed attempts on other endpoints (retryAllowed) for failures dispatch classified as retryable. */
export function retryLayer(logger: Logger): Layer {
  return (next) => async (job, first) => {
    const upstream = job.upstream;
    const deadline = retryDeadline(upstream);
    let endpoint = first;
    for (let attempt = 0; ; attempt++) {
      const r = await next(job, endpoint);
      if (r.ok) return r;
      const ctx = job.pickCtx;
      if (ctx.tried === null) ctx.tried = new Set();
      ctx.tried.add(endpoint.key);
      job.failedStatuses += `${job.failedStatuses === '' ? '' : ', '}${statusOf(r)}`;
      if (!job.cancelled) logger.warn({ upstream: endpoint.key, kind: r.kind, msg: r.message }, 'upstream attempt failed');
      if (!r.retryable || !retryAllowed(upstream, attempt, deadline, job.cancelled)) return r;
      const pick = upstream.pick(ctx);
      if (!pick.ok) return r;
      endpoint = pick.endpoint;
    }
  };
}

/** `layers` outermost first: compose(base, retry, outcomes) runs retry(outcomes(base)). */
export function compose(base: Attempt, ...layers: Layer[]): Attempt {
  let a = base;
  for (let i = layers.length - 1; i >= 0; i--) a = layers[i]!(a);
  return a;
}

/** The HTTP status a final failure is answered with. */
export function failureStatus(f: DispatchFailure): number {
  return statusOf(f);
}
