// TLS facts of a connection for the pipeline (TlsInfo), computed once per connection and cached on the socket.
// The HTTPS listener records which SSL object served the handshake (src/tls/store.ts tagSslChoice); the
// certificate verification result comes from node's TLS layer (requestCert with rejectUnauthorized off, so the
// 400 for a missing certificate is an HTTP answer, as nginx gives it).
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { TlsInfo } from '../../src/pipeline/downstream.ts';
import { hostTls } from '../../src/tls/host-check.ts';
import { chainWithinDepth, distinguishedName, sslChoiceOf, type CertificateStore } from '../../src/tls/store.ts';

const kInfo = Symbol('switchyard.tlsInfo');
const kCerts = Symbol('switchyard.certificates');
type Cached = { [kInfo]?: TlsInfo; [kCerts]?: () => CertificateStore | null };

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
  // client.depth as nginx's ssl_verify_depth: OpenSSL ignores the certificates above the limit, so a longer
  // chain fails for want of its issuer (nginx's $ssl_client_verify shows this reason).
  if (verify === 'SUCCESS' && !chainWithinDepth(s, choice!, peer!.raw)) verify = 'FAILED:unable to get local issuer certificate';
  const info: TlsInfo = {
    servername: typeof s.servername === 'string' ? s.servername : '',
    protocol: s.getProtocol() ?? '',
    cipher: s.getCipher()?.name ?? '',
    clientVerify: verify,
    clientSubject: presented ? distinguishedName(peer!.subject as unknown as Record<string, string>) : '',
    clientIssuer: presented ? distinguishedName(peer!.issuer as unknown as Record<string, string>) : '',
    clientSerial: presented ? peer!.serialNumber : '',
    sslId: choice?.sslId ?? '',
    skipMtls: choice?.skipMtls ?? null,
    mtlsRequired: choice?.mtls ?? false,
  };
  (socket as Cached)[kInfo] = info;
  return info;
}

/** Records the listener's certificate store on a TLS connection for the per-request Host check below. */
export function tagCertificates(socket: TLSSocket, certs: () => CertificateStore | null): void {
  (socket as TLSSocket & Cached)[kCerts] = certs;
}

/** The connection's TLS facts as they apply to one request to `authority` (src/tls/host-check.ts). */
export function tlsInfoFor(socket: Socket | undefined | null, authority: string | null): TlsInfo | null {
  const info = tlsInfoOf(socket);
  if (info === null) return null;
  return hostTls(info, authority, (socket as Cached)[kCerts]?.() ?? null);
}
