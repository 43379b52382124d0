// The per-request (HTTP) and per-session (stream) contexts plugins see. Concrete classes live with the
// listeners (protocols/http, protocols/stream); plugins depend only on these interfaces.
import type { JsonObject } from '../config/resources.ts';
import type { Vars, VarValue } from '../router/vars.ts';

export type HeaderValue = string | string[];
/** Lower-cased header names. */
export type HeaderMap = Record<string, HeaderValue | undefined>;

export interface MutableVars extends Vars {
  /** Sets a context variable (e.g. mqtt_client_id, consumer_name, custom plugin vars). */
  set(name: string, value: VarValue): void;
}

export interface ConsumerRef {
  readonly username: string;
  readonly group_id?: string;
  /** Plugins of the consumer (and its group), merged by the runtime when the consumer is attached. */
  readonly plugins?: JsonObject;
  /** Credential id when identified by a credential. */
  readonly credentialId?: string;
  /** The consumer's `labels.custom_id` (X-Consumer-Custom-ID upstream). */
  readonly customId?: string;
}

export interface HttpRequestView {
  method: string;
  /** Path without the query string (what proxy-rewrite changes). */
  path: string;
  /** Raw query string without '?'; '' when absent. */
  query: string;
  readonly headers: HeaderMap;
  setHeader(name: string, value: HeaderValue | null): void;
  readonly remoteAddr: string;
  readonly remotePort: number;
  readonly serverAddr: string;
  readonly serverPort: number;
  readonly scheme: 'http' | 'https';
  readonly httpVersion: string;
  /** Host without port, lower-cased. */
  readonly host: string;
  /** Reads the whole body (bounded by client_max_body_size); the proxy then sends the buffered body. */
  readBody(): Promise<Buffer>;
  /** Replaces the body sent upstream. */
  setBody(body: Buffer | string): void;
}

export interface HttpResponseView {
  status: number;
  readonly headers: HeaderMap;
  setHeader(name: string, value: HeaderValue | null): void;
  /** In header_filter: replace the whole upstream body with this one (response-rewrite). */
  replaceBody(body: Buffer | string): void;
  /** Response trailers: set from the upstream before the final body_filter call; plugins may change them. */
  trailers: Record<string, string> | null;
}

/** The protocol spoken to the upstream for one request: as configured, or chosen by a plugin. */
export type UpstreamProtocol = 'http/1.1' | 'h2';

export interface HttpContext {
  readonly vars: MutableVars;
  readonly request: HttpRequestView;
  /** Populated before header_filter. */
  readonly response: HttpResponseView;
  readonly routeId: string;
  readonly serviceId: string | undefined;
  consumer: ConsumerRef | null;
  /** Override the route's upstream (traffic-split): an upstream id, or an inline upstream object. */
  setUpstream(upstream: string | JsonObject): void;
  /**
   * Speak this protocol to the upstream for this request (h2: h2c for http nodes, h2 over TLS for https),
   * whatever the upstream configures; protocol-translating plugins (grpc-web, grpc-transcode) use it together
   * with request.path and request_body_filter.
   */
  setUpstreamProtocol(protocol: UpstreamProtocol): void;
  /** Upstream address picked by the balancer (`ip:port`), set before before_proxy. */
  readonly upstreamAddr: string | undefined;
  /** Final upstream status, available in header_filter/log (undefined when answered locally). */
  readonly upstreamStatus: number | undefined;
  /** Request start, process.hrtime.bigint() nanoseconds. */
  readonly startNs: bigint;
  /** Per-request scratch space for plugins, keyed by plugin name. */
  readonly pluginData: Map<string, unknown>;
  /**
   * Aborted when the client goes away before the exchange ends, for plugins that call a backend themselves
   * (ai-proxy passes it to its HTTP client). Created on first access: requests that never ask pay nothing.
   */
  readonly clientSignal: AbortSignal;
  /** Log phase: milliseconds from dispatch to upstream response headers (undefined when not proxied). */
  readonly upstreamLatencyMs?: number | undefined;
  /** Log phase: response body bytes sent to the client. */
  readonly bytesSent?: number;
  /** Log phase: the final status of a gRPC answer, '0'..'16' ($grpc_status); undefined for other answers. */
  readonly grpcStatus?: string | undefined;
}

export interface StreamContext {
  readonly vars: MutableVars;
  readonly remoteAddr: string;
  readonly remotePort: number;
  readonly serverAddr: string;
  readonly serverPort: number;
  readonly protocol: 'tcp' | 'udp';
  readonly sni: string | undefined;
  readonly routeId: string;
  /**
   * Waits until at least `n` bytes of client data are buffered (or the client ended/timeout) and returns
   * them without consuming: they are still forwarded upstream afterwards.
   */
  peek(n: number): Promise<Buffer>;
  /** Everything buffered so far (not consumed). */
  peeked(): Buffer;
  setUpstream(upstream: string | JsonObject): void;
  /** Set at log time. */
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly upstreamAddr: string | undefined;
  readonly startNs: bigint;
  readonly pluginData: Map<string, unknown>;
}
