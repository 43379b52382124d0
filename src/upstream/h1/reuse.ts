// Whether a response of the upstream HTTP/1.1 client (conn.ts) lets its connection carry another request, and
// for how long it may then idle. Pure: conn.ts calls it once per response head.
import { connectionReusable, keepAliveHint } from './wire.ts';

/**
 * The idle time (ms) the connection keeps after this response, or -1 when it must not be reused. `keepAlive`
 * is llhttp's verdict; `idleMs` is the connection's current idle time and `poolIdleMs` the pool's.
 */
export function reuseIdleMs(
  headers: Record<string, string | string[] | undefined>,
  status: number,
  minor: number,
  keepAlive: boolean,
  isHead: boolean,
  idleMs: number,
  poolIdleMs: number,
): number {
  let reusable = keepAlive;
  // llhttp decides keep-alive before it knows a HEAD response has no body: read the Connection header instead.
  if (isHead && !reusable) reusable = connectionReusable(headers.connection, minor);
  // A 204/304 announcing a body may send one anyway; it would be read as the next response.
  if ((status === 204 || status === 304) && ((headers['content-length'] !== undefined && headers['content-length'] !== '0') || headers['transfer-encoding'] !== undefined)) {
    return -1;
  }
  if (!reusable) return -1;
  const hint = keepAliveHint(headers['keep-alive']);
  if (hint < 0) return idleMs;
  // undici's margin: stop reusing one second before the upstream's announced idle timeout.
  const ms = hint - 1000;
  return ms <= 0 ? -1 : Math.min(poolIdleMs, ms);
}
