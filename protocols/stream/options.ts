// Tunables of the stream proxy shared by the TCP and UDP paths, with their defaults.
import type { Logger } from '../../src/observability/logger.ts';
import type { CertificateStore } from '../../src/tls/store.ts';
import type { StreamRuntime } from '../../stream-routes/types.ts';
import type { XrpcHandler } from '../../stream-routes/xrpc.ts';

export interface StreamTimeouts {
  /** TLS handshake and PROXY protocol header from the client. */
  handshakeMs: number;
  /** How long a plain connection waits for a ClientHello when SNI routes exist (server-first protocols wait this long). */
  sniPeekMs: number;
  /** Bound on a plugin's ctx.peek (mqtt-proxy has its own 10 s bound too). */
  peekMs: number;
  /** Upstream connect when the upstream sets no `timeout`. */
  connectMs: number;
  /** TCP idle timeout when the upstream sets no `timeout` (nginx proxy_timeout 10 min). */
  idleMs: number;
  /** UDP session idle timeout. */
  udpIdleMs: number;
  /** Graceful close: how long to wait for live sessions before destroying them. */
  drainMs: number;
}

export const DEFAULT_TIMEOUTS: StreamTimeouts = {
  handshakeMs: 10_000,
  sniPeekMs: 1_000,
  peekMs: 10_000,
  connectMs: 6_000,
  idleMs: 600_000,
  udpIdleMs: 60_000,
  drainMs: 30_000,
};

/** Bytes a session may buffer before its upstream is connected (peeks). */
export const PEEK_LIMIT = 64 * 1024;
/** Bound on concurrent UDP sessions per listener (oldest idle evicted first). */
export const UDP_MAX_SESSIONS = 10_000;
/** Datagrams queued per UDP session while its preread plugins run. */
export const UDP_MAX_PENDING = 64;

export interface SessionDeps {
  getRuntime(): StreamRuntime | null;
  logger: Logger;
  timeouts: StreamTimeouts;
  /** apisix.ssl.fallback_sni: the ssl object a TLS listener uses for clients that send no SNI. */
  fallbackSni?: string;
  /** The shared certificate store (null before its first build): TLS listeners' ssl objects. */
  certificates(): CertificateStore | null;
  /** The handler of a registered xRPC protocol (created on first use), undefined when not registered. */
  xrpc?(name: string): XrpcHandler | undefined;
}
