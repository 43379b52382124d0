// TLS facts of a connection for the pipeline (TlsInfo), computed once per connection and cached on the socket.
// The HTTPS listener records which SSL object served the handshake (src/tls/store.ts tagSslChoice); the
// certificate verification result comes from node's TLS layer (requestCert with rejectUnauthorized off, so the
// 400 for a missing certificate is an HTTP answer, as nginx gives it).
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { TlsInfo } from '../../src/pipeline/downstream.ts';
import { sslChoiceOf } from '../../src/tls/store.ts';

const kInfo = Symbol('switchyard.tlsInfo');
type Cached = { [kInfo]?: TlsInfo };

function dn(o: Record<string, string | string[]> | undefined): string {
  if (o === undefined) return '';
  const parts: string[] = [];
  for (const k in o) {
    const v = o[k];
    parts.push(`${k}=${Array.isArray(v) ? v.join('+') : v}`);
  }
  return parts.join(',');
}

export function tlsInfoOf(socket: Socket | undefined | null): TlsInfo | null {
  if (socket === undefined || socket === null || (socket as TLSSocket).encrypted !== true) return null;
  const cached = (socket as Cached)[kInfo];
  if (cached !== undefined) return cached;
  const s = socket as TLSSocket;
  const choice = sslChoiceOf(s);
  const peer = choice?.mtls ? s.getPeerCertificate() : null;
  const presented = peer !== null && peer !== undefined && Object.keys(peer).length > 0;
  let verify = 'NONE';
  if (choice?.mtls) verify = !presented ? 'NONE' : s.authorized ? 'SUCCESS' : `FAILED:${String(s.authorizationError ?? 'unknown')}`;
  const info: TlsInfo = {
    servername: typeof s.servername === 'string' ? s.servername : '',
    protocol: s.getProtocol() ?? '',
    cipher: s.getCipher()?.name ?? '',
    clientVerify: verify,
    clientSubject: presented ? dn(peer!.subject as unknown as Record<string, string>) : '',
    clientIssuer: presented ? dn(peer!.issuer as unknown as Record<string, string>) : '',
    clientSerial: presented ? peer!.serialNumber : '',
    sslId: choice?.sslId ?? '',
    skipMtls: choice?.skipMtls ?? null,
    mtlsRequired: choice?.mtls ?? false,
  };
  (socket as Cached)[kInfo] = info;
  return info;
}
