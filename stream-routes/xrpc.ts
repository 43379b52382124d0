// xRPC (APISIX `stream_routes[].protocol`): L7 protocols carried over a TCP stream route. A protocol
// registers a factory by its APISIX name; the TCP listener hands a matched connection whose route names a
// registered protocol to that protocol's handler after route match and preread plugins, instead of piping
// bytes to one upstream connection. Routes naming an unregistered protocol keep the plain TCP proxy.
// Handlers are created per listener group (they own shared upstream connections) and closed with it.
import type { Duplex } from 'node:stream';
import type { Logger } from '../src/observability/logger.ts';
import type { StreamContext } from '../src/plugin/context.ts';
import type { UpstreamRuntime } from '../src/upstream/upstream.ts';
import type { StreamRoute, StreamRuntime } from './types.ts';

/** One client connection handed to an xRPC protocol. */
export interface XrpcConnection {
  /** The client side (decrypted on tls listeners). */
  readonly socket: Duplex;
  /** Client bytes read before the hand-over (preread peeks); the protocol consumes them first. */
  readonly buffered: readonly Buffer[];
  /** The client already half-closed while those bytes were buffered. */
  readonly ended: boolean;
  /** The matched (superior) route. */
  readonly route: StreamRoute;
  /** The route's upstream, or a traffic-split override chosen in preread. */
  readonly upstream: UpstreamRuntime;
  /** The runtime pinned at accept time (subordinate routes, upstream lookups). */
  readonly runtime: StreamRuntime;
  readonly ctx: StreamContext;
  readonly connectMs: number;
  /** Client idle bound (no bytes either way). */
  readonly idleMs: number;
}

export interface XrpcHandler {
  /** Serves a connection until it closes; resolves with the session's stream `$status`. Never rejects. */
  serve(conn: XrpcConnection): Promise<number>;
  /** Closes upstream connections shared by this handler's sessions. */
  close(): Promise<void>;
}

export interface XrpcProtocol {
  /** APISIX protocol name (`protocol.name` of a stream route). */
  readonly name: string;
  create(deps: { readonly logger: Logger }): XrpcHandler;
}

export class XrpcRegistry {
  private readonly protocols = new Map<string, XrpcProtocol>();

  register(p: XrpcProtocol): void {
    if (this.protocols.has(p.name)) throw new Error(`xRPC protocol ${p.name} registered twice`);
    this.protocols.set(p.name, p);
  }

  get(name: string): XrpcProtocol | undefined {
    return this.protocols.get(name);
  }

  list(): XrpcProtocol[] {
    return [...this.protocols.values()];
  }
}

/**
 * The process-wide registry the stream listeners use unless given another one; the composition root
 * fills it (protocols/<name>/index.ts `setup`).
 */
export const xrpcProtocols = new XrpcRegistry();

/** `protocol.name` of a route, when it is a non-subordinate xRPC route. */
export function xrpcName(route: StreamRoute): string | undefined {
  const p = route.value.protocol;
  if (p === null || typeof p !== 'object' || Array.isArray(p)) return undefined;
  return typeof p.name === 'string' ? p.name : undefined;
}

/** `protocol.conf` of a route ({} when absent). */
export function xrpcConf(route: StreamRoute): Record<string, unknown> {
  const p = route.value.protocol;
  if (p === null || typeof p !== 'object' || Array.isArray(p)) return {};
  const c = p.conf;
  return c !== null && typeof c === 'object' && !Array.isArray(c) ? (c as Record<string, unknown>) : {};
}
