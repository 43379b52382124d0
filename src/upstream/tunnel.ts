// Raw connections to an upstream endpoint for tunnelled exchanges (WebSocket upgrades): plain TCP, or TLS
// for https/tls/grpcs/wss-style schemes with the upstream's own TLS settings (certificate verification, client
// certificate, SNI) — the same settings the pooled HTTP dispatch uses.
import net from 'node:net';
import tls from 'node:tls';
import type { Endpoint } from './balancer.ts';
import type { UpstreamRuntime } from './upstream.ts';

const TLS_SCHEMES: ReadonlySet<string> = new Set(['https', 'tls', 'grpcs', 'wss']);

export type TunnelResult = { ok: true; socket: net.Socket } | { ok: false; kind: 'connect' | 'timeout'; message: string };

export function isTlsUpstream(upstream: UpstreamRuntime): boolean {
  return TLS_SCHEMES.has(upstream.scheme);
}

/**
 * Connects to `endpoint`; `servername` is the SNI (the upstream Host's name, as APISIX's proxy_ssl_name).
 * Resolves with the connected socket or a classified failure, never rejects.
 */
export function openTunnel(upstream: UpstreamRuntime, endpoint: Endpoint, timeoutMs: number, servername: string): Promise<TunnelResult> {
  return new Promise((resolve) => {
    const secure = isTlsUpstream(upstream);
    let s: net.Socket;
    if (secure) {
      const t = upstream.tls;
      const name = servername.startsWith('[') ? '' : servername.replace(/:\d+$/, '');
      s = tls.connect({
        host: endpoint.host,
        port: endpoint.port,
        servername: name === '' || net.isIP(name) !== 0 ? undefined : name,
        rejectUnauthorized: t.verify,
        ...(t.clientCert !== undefined && t.clientKey !== undefined ? { cert: t.clientCert, key: t.clientKey } : {}),
        ALPNProtocols: ['http/1.1'],
      });
    } else {
      s = net.connect({ host: endpoint.host, port: endpoint.port, noDelay: true });
    }
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      s.destroy();
      resolve({ ok: false, kind: 'timeout', message: `connect timeout after ${timeoutMs} ms` });
    }, timeoutMs);
    s.once(secure ? 'secureConnect' : 'connect', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.removeAllListeners('error');
      resolve({ ok: true, socket: s });
    });
    s.once('error', (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ok: false, kind: 'connect', message: err.message });
    });
  });
}
