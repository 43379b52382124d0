// diagnostics_channel events the HTTP pipeline publishes at its stage boundaries, for embedders, the metrics
// in src/observability/http-stats.ts and tracers (docs/diagnostics-channels.md lists them for users).
// Publishing costs one `hasSubscribers` test when nobody listens: no message is built, no closure or promise
// is added. Subscribers run synchronously inside the request path: read the message there, never keep it
// (it belongs to a live request) and never change it.
import diagnostics_channel from 'node:diagnostics_channel';
import type { Endpoint } from '../upstream/balancer.ts';
import type { DispatchFailure } from '../upstream/dispatch.ts';
import type { Layer, ProxyJob } from '../upstream/proxy.ts';

/**
 * A request entered the pipeline (headers parsed and normalized, before routing). Message: HttpRequestMessage
 * (route, service, upstream and status fields are not known yet).
 */
export const HTTP_REQUEST_START = 'switchyard:http:request:start';
/**
 * The exchange ended (answered, failed or abandoned by the client); published after the log phase.
 * Message: HttpRequestMessage.
 */
export const HTTP_REQUEST_END = 'switchyard:http:request:end';
/**
 * One upstream attempt failed (connect, timeout, reset, protocol error); a retry on another node may follow,
 * each failed attempt is published. Attempts cancelled because the client went away are not.
 * Message: HttpUpstreamErrorMessage.
 */
export const HTTP_UPSTREAM_ERROR = 'switchyard:http:upstream:error';

export const requestStart = diagnostics_channel.channel(HTTP_REQUEST_START);
export const requestEnd = diagnostics_channel.channel(HTTP_REQUEST_END);
export const upstreamError = diagnostics_channel.channel(HTTP_UPSTREAM_ERROR);

/**
 * The message of request:start and request:end: the pipeline's Transaction itself (src/pipeline/transaction.ts
 * implements these fields as getters, so publishing builds nothing). Its other members are internal.
 */
export interface HttpRequestMessage {
  readonly method: string;
  /** The normalized request path, without the query. */
  readonly path: string;
  /** The matched route's id; null before routing or when no route matched. */
  readonly routeId: string | null;
  /** The matched route's service_id; null when it has none. */
  readonly serviceId: string | null;
  /** `ip:port` of the upstream node of the last attempt; null when nothing was proxied. */
  readonly upstreamNode: string | null;
  /** The status the client got (499: it went away first); 0 at request:start. */
  readonly status: number;
  /** Milliseconds since the request entered the pipeline, read when the getter runs. */
  readonly latencyMs: number;
  /** Milliseconds from the last upstream attempt's dispatch to its response head or failure; 0 when none ran. */
  readonly upstreamLatencyMs: number;
}

/** The message of upstream:error, built only while the channel has subscribers. */
export interface HttpUpstreamErrorMessage {
  /** The request whose attempt failed (its upstreamNode is the failed node). */
  readonly request: HttpRequestMessage;
  readonly routeId: string | null;
  readonly serviceId: string | null;
  /** `ip:port` of the node the attempt went to. */
  readonly upstreamNode: string;
  readonly kind: DispatchFailure['kind'];
  readonly message: string;
  /** Whether the failure allows a retry on another node (whether one happens depends on `retries`). */
  readonly retryable: boolean;
}

/**
 * The innermost attempt layer: publishes each failed attempt on upstream:error. Without subscribers it hands
 * the attempt on untouched. The pipeline's ProxyJob is its Transaction, hence an HttpRequestMessage.
 */
export const upstreamErrorLayer: Layer = (next) => (job, endpoint) => {
  // hot path
  if (!upstreamError.hasSubscribers) return next(job, endpoint);
  return next(job, endpoint).then((r) => {
    if (!r.ok && !job.cancelled) publishUpstreamError(job as ProxyJob & HttpRequestMessage, endpoint, r);
    return r;
  });
};

/** Publishes one failed attempt (dispatch or tunnel connect); callers test `upstreamError.hasSubscribers` first. */
export function publishUpstreamError(
  request: HttpRequestMessage,
  endpoint: Endpoint,
  f: Pick<DispatchFailure, 'kind' | 'message' | 'retryable'>,
): void {
  if (!upstreamError.hasSubscribers) return;
  const message: HttpUpstreamErrorMessage = {
    request,
    routeId: request.routeId,
    serviceId: request.serviceId,
    upstreamNode: endpoint.key,
    kind: f.kind,
    message: f.message,
    retryable: f.retryable,
  };
  upstreamError.publish(message);
}
