// Upstream callers: the seam through which plugins that answer from before_proxy (dubbo-proxy, http-dubbo)
// reach a protocol client that lives in protocols/<name>/ without importing it (src/ never depends on
// listeners). A protocol folder registers its caller from its setup(); plugins look it up by protocol name
// per request, so the order of setup and plugin creation does not matter. The registry is process-wide:
// callers own connection pools keyed by endpoint, shared by every snapshot (and every gateway in a process),
// as APISIX shares one upstream keepalive pool per worker.

/** A provider address: what the balancer picked. */
export interface RpcEndpoint {
  /** `host:port`, IPv6 bracketed (the balancer's endpoint key). */
  readonly key: string;
  readonly host: string;
  readonly port: number;
}

/** Pool settings of one call; calls with different settings use different pools. */
export interface RpcPoolSettings {
  readonly connectTimeoutMs: number;
  /** Calls in flight per connection before another one opens (APISIX `upstream_multiplex_count`). */
  readonly multiplex?: number;
}

/** A Dubbo 2 call with hessian2 serialization. */
export interface DubboInvocation extends RpcPoolSettings {
  readonly service: string;
  readonly version: string;
  readonly method: string;
  /** JVM parameter descriptor, e.g. "Ljava/util/Map;". */
  readonly paramTypes: string;
  /** Plain JS values or hessian.js typed values `{$class, $}`. */
  readonly args: readonly unknown[];
  readonly attachments?: Readonly<Record<string, string>>;
  /** Bound on the whole call, from sending to the reply. */
  readonly timeoutMs: number;
}

/** A Dubbo 2 request whose body the plugin serialized itself (e.g. fastjson, serialization id 6). */
export interface DubboRawRequest extends RpcPoolSettings {
  readonly serialization: number;
  readonly body: Buffer;
  readonly timeoutMs: number;
}

/**
 * No usable answer. `connect_failed` means the call was never sent (safe to send elsewhere); the others may
 * have reached the provider.
 */
export interface RpcTransportFailure {
  readonly ok: false;
  readonly kind: 'transport';
  readonly code: 'timeout' | 'connect_failed' | 'connection_closed' | 'overloaded' | 'bad_frame' | 'closed' | 'bad_request' | 'bad_response';
  readonly message: string;
}

export type DubboReply =
  | { readonly ok: true; readonly kind: 'value'; readonly value: unknown; readonly attachments: Record<string, unknown> }
  | { readonly ok: true; readonly kind: 'null'; readonly attachments: Record<string, unknown> }
  | {
      readonly ok: false;
      readonly kind: 'exception';
      readonly exception: { readonly className: string; readonly message: string };
      readonly attachments: Record<string, unknown>;
    }
  /** The provider answered a non-OK frame status (e.g. service not found) with this message. */
  | { readonly ok: false; readonly kind: 'status'; readonly status: number; readonly message: string }
  | RpcTransportFailure;

/** The provider's response frame, undecoded. */
export type DubboRawReply = { readonly ok: true; readonly status: number; readonly body: Buffer } | RpcTransportFailure;

export interface DubboCaller {
  /** Never rejects. */
  invoke(endpoint: RpcEndpoint, call: DubboInvocation): Promise<DubboReply>;
  /** One two-way request frame with the given serialization and body; never rejects. */
  exchange(endpoint: RpcEndpoint, request: DubboRawRequest): Promise<DubboRawReply>;
}

/** Caller interfaces by protocol name. */
export interface UpstreamCallerTypes {
  dubbo: DubboCaller;
}

export class UpstreamCallers {
  private readonly callers = new Map<keyof UpstreamCallerTypes, UpstreamCallerTypes[keyof UpstreamCallerTypes]>();

  /** Idempotent for the same caller: every gateway started in a process runs the protocol setups. */
  register<K extends keyof UpstreamCallerTypes>(name: K, caller: UpstreamCallerTypes[K]): void {
    const have = this.callers.get(name);
    if (have !== undefined && have !== caller) throw new Error(`upstream caller ${name} registered twice`);
    this.callers.set(name, caller);
  }

  get<K extends keyof UpstreamCallerTypes>(name: K): UpstreamCallerTypes[K] | undefined {
    return this.callers.get(name) as UpstreamCallerTypes[K] | undefined;
  }
}

export const upstreamCallers = new UpstreamCallers();
