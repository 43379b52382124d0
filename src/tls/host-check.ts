// The SNI-vs-Host rule of client certificates, one home for every HTTP listener over TLS (HTTPS on both
// HTTP/1.1 engines and h2, HTTP/3). APISIX verify_https_client: a request whose Host selects an ssl object with
// client.ca is served only when the connection's SNI is that Host ("client certificate verified with SNI x,
// but the host is y"), even when one wildcard ssl object covers both names; otherwise an SNI without mTLS
// could front for the Host and skip the check.
import type { TlsInfo } from '../pipeline/downstream.ts';
import { normalizeHost } from '../router/uri.ts';
import type { CertificateStore } from './store.ts';

/**
 * The connection's TLS facts `info` as they apply to one request to `authority` (Host or :authority, as
 * received), the ssl objects being those of `store`. A request the rule refuses gets a failed verification,
 * so the pipeline answers 400. The result depends on `store`: a caller that caches it keys the cache by the
 * store too, so an ssl object given client.ca later holds on connections opened before.
 */
export function hostTls(info: TlsInfo, authority: string | null, store: CertificateStore | null): TlsInfo {
  // hot path: SNI equal to Host costs a compare.
  if (authority === null || authority === '') return info;
  const sni = info.servername;
  if (sni !== '' && authority.length >= sni.length && authority.startsWith(sni) && (authority.length === sni.length || authority.charCodeAt(sni.length) === 58)) return info;
  // The router's normalization (case, port, trailing dots): `m.test.` must select the ssl object of the route
  // `m.test` it reaches. A host the router refuses is answered 400 by the pipeline anyway.
  const host = normalizeHost(authority);
  if (host === null || host === sni.toLowerCase()) return info;
  const choice = store?.lookup(host);
  if (choice === undefined || !choice.mtls) return info;
  // A client without SNI was served fallback_sni's ssl object: the Host must select that same object.
  if (sni === '' && choice.sslId === info.sslId) return info;
  return { ...info, clientVerify: 'FAILED:SNI does not match Host', mtlsRequired: true, skipMtls: null };
}
