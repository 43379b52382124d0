// Where a server handshake's certificates and versions come from, for every TLS listener that terminates TLS itself
// (HTTPS: protocols/http/tls-accept.ts; the TLS stream listener: protocols/stream/tcp.ts). The ssl object is picked
// from the SNI of the ClientHello read before the handshake (client-hello.ts), and the handshake starts from that
// object's own SecureContext. Node's SNICallback cannot stand in: it copies only the last certificate and key of the
// context it is handed into the connection and keeps the starting context's protocol range and ciphers, so an ssl
// object's second certificate (certs/keys, another key type) and its `ssl_protocols` would be ignored. Started from
// the object's context, OpenSSL picks the certificate the client supports (ECDSA or RSA, by signature algorithms and
// cipher suites) and enforces the object's versions itself.
import tls from 'node:tls';

let noCertificate: tls.SecureContext | null = null;

/**
 * The context for a handshake that must fail: an SNI without a certificate, or no SNI and no fallback. OpenSSL
 * refuses the ClientHello with an alert, as APISIX does for an SNI it has no certificate for.
 */
export function noCertificateContext(): tls.SecureContext {
  return (noCertificate ??= tls.createSecureContext({}));
}

/** The context a handshake starts from: the picked ssl object's, else one that fails the handshake. */
export function handshakeContext(picked: tls.SecureContext | undefined): tls.SecureContext {
  return picked ?? noCertificateContext();
}
