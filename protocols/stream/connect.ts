// Connecting a stream session to an upstream node: TCP connect bounded by the connect timeout, an optional
// PROXY protocol header written first, then for `scheme: tls` a TLS handshake over the same socket (SNI: the
// client's, else the node's hostname, else "apisix_backend" as APISIX does; client certificate from
// upstream.tls). The same timeout bounds the whole sequence.
import net from 'node:net';
import tls from 'node:tls';
import type { Endpoint } from '../../src/upstream/balancer.ts';
import type { UpstreamTls } from '../../src/upstream/upstream.ts';

export interface ConnectRequest {
  readonly endpoint: Endpoint;
  readonly timeoutMs: number;
  /** PROXY protocol header to send before anything else, or null. */
  readonly header: Buffer | null;
  /** TLS to the node (`scheme: tls`), null for plain TCP. */
  readonly tls: { readonly settings: UpstreamTls; readonly clientSni: string | undefined } | null;
  /** Reads through this `onread` (plain TCP only); the socket then stays paused until its reader resumes it. */
  readonly onread?: net.OnReadOpts;
}

export type ConnectResult =
  | { readonly ok: true; readonly socket: net.Socket; readonly raw: net.Socket }
  | { readonly ok: false; readonly reason: string; readonly timedOut: boolean };

const FALLBACK_SNI = 'apisix_backend';

function serverName(clientSni: string | undefined, endpoint: Endpoint): string {
  if (clientSni !== undefined && clientSni !== '') return clientSni;
  return net.isIP(endpoint.domain) === 0 ? endpoint.domain : FALLBACK_SNI;
}

export function connectUpstream(req: ConnectRequest): Promise<ConnectResult> {
  return new Promise<ConnectResult>((resolve) => {
    const { endpoint } = req;
    const onread = req.tls === null ? req.onread : undefined;
    const raw = net.connect({ host: endpoint.host, port: endpoint.port, allowHalfOpen: true, noDelay: true, onread });
    // Reading starts at connect unless paused: an onread socket has no readable buffer to hold early bytes.
    if (onread !== undefined) raw.pause();
    let secure: tls.TLSSocket | null = null;
    let settled = false;
    const finish = (r: ConnectResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      raw.off('error', onError);
      secure?.off('error', onError);
      if (!r.ok) {
        secure?.destroy();
        raw.destroy();
      }
      resolve(r);
    };
    const onError = (err: Error): void => finish({ ok: false, reason: err.message, timedOut: false });
    const timer = setTimeout(
      () => finish({ ok: false, reason: `connect timed out after ${req.timeoutMs} ms`, timedOut: true }),
      req.timeoutMs,
    );
    raw.once('error', onError);
    raw.once('connect', () => {
      if (req.header !== null) raw.write(req.header);
      if (req.tls === null) return finish({ ok: true, socket: raw, raw });
      const s = req.tls.settings;
      secure = tls.connect({
        socket: raw,
        servername: serverName(req.tls.clientSni, endpoint),
        rejectUnauthorized: s.verify,
        ...(s.clientCert !== undefined ? { cert: s.clientCert, key: s.clientKey } : {}),
      });
      secure.once('error', onError);
      secure.once('secureConnect', () => finish({ ok: true, socket: secure!, raw }));
    });
  });
}
