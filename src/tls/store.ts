// The one certificate store: downstream TLS certificates from `ssls` of type server with status 1, for HTTPS,
// QUIC and the stream TLS listeners. Secure contexts are built at snapshot time and reused across snapshots
// while the ssl object is unchanged, so a certificate replaced through the Admin API or etcd serves the next
// handshake and open connections keep theirs. SNI lookup follows APISIX's SSL matcher: exact name first, then
// a wildcard covering exactly one label (`*.x.com` matches `a.x.com`, not `a.b.x.com`). Several certificates
// of different key types in one ssl object (cert/key plus certs/keys) share one context, with the object's
// ssl_protocols (else apisix.ssl's) and apisix.ssl.ssl_ciphers. OpenSSL picks the certificate the client supports
// and enforces the versions only when a handshake starts from that context (src/tls/handshake-context.ts): node's
// SNICallback copies just the context's last certificate and key into a handshake and keeps the listener's
// versions and ciphers.
import { createHash, X509Certificate } from 'node:crypto';
import tls, { type DetailedPeerCertificate, type SecureContext, type TLSSocket } from 'node:tls';
import type { JsonObject } from '../config/resources.ts';
import type { Logger } from '../observability/logger.ts';
import type { Snapshot } from '../config/snapshot.ts';

export interface SslItem {
  readonly id: string;
  readonly modifiedIndex: number;
  readonly value: JsonObject;
}

/** What a handshake picked: the context plus the mTLS policy of its ssl object. */
export interface SslChoice {
  readonly sslId: string;
  readonly context: SecureContext;
  /** What the context was built from (a listener's default context for clients without SNI). */
  readonly options: tls.SecureContextOptions;
  /** The ssl object has `client.ca`: the client is asked for a certificate, verified against it. */
  readonly mtls: boolean;
  /** `client.skip_mtls_uri_regex`: paths that need no verified client certificate. */
  readonly skipMtls: ((path: string) => boolean) | null;
  /**
   * `client.depth` (nginx ssl_verify_depth, default 1): how many intermediate CA certificates may stand between
   * the client certificate and the trusted root. Node has no per-context verify depth, so the HTTP layer
   * checks it on the verified chain (chainWithinDepth).
   */
  readonly depth: number;
  /** The certificates of `client.ca`, parsed once: where a chain's trust anchor and bundled intermediates are. */
  readonly caCerts: readonly X509Certificate[];
}

/** Listener-wide TLS defaults (config.yaml apisix.ssl). */
export interface TlsDefaults {
  /** `ssl_protocols`: "TLSv1.2 TLSv1.3". */
  readonly protocols?: string;
  /** `ssl_ciphers`: OpenSSL cipher list (TLS 1.2 and below). */
  readonly ciphers?: string;
}

interface Cached {
  readonly modifiedIndex: number;
  readonly value: JsonObject;
  readonly choice: SslChoice;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

const VERSIONS: readonly tls.SecureVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

/** `ssl_protocols` (a list, or nginx's space-separated string) -> Node's minVersion/maxVersion. */
export function versionRange(v: unknown): { minVersion?: tls.SecureVersion; maxVersion?: tls.SecureVersion } {
  const names = typeof v === 'string' ? v.split(/\s+/) : strings(v);
  const list = names.filter((p): p is tls.SecureVersion => (VERSIONS as readonly string[]).includes(p));
  if (list.length === 0) return {};
  list.sort((a, b) => VERSIONS.indexOf(a) - VERSIONS.indexOf(b));
  return { minVersion: list[0], maxVersion: list[list.length - 1] };
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

function buildChoice(id: string, v: JsonObject, defaults: TlsDefaults): SslChoice {
  const certs = [v.cert, ...strings(v.certs)].filter((x): x is string => typeof x === 'string');
  const keys = [v.key, ...strings(v.keys)].filter((x): x is string => typeof x === 'string');
  const client = v.client !== null && typeof v.client === 'object' ? (v.client as JsonObject) : undefined;
  const ca = typeof client?.ca === 'string' ? client.ca : undefined;
  const range = v.ssl_protocols !== undefined ? versionRange(v.ssl_protocols) : versionRange(defaults.protocols);
  const options: tls.SecureContextOptions = {
    cert: certs,
    key: keys,
    ...range,
    ...(defaults.ciphers !== undefined ? { ciphers: defaults.ciphers } : {}),
    // OpenSSL refuses to resume a session (TLS 1.2 ids and TLS 1.3 tickets alike) on a context that verifies
    // peers but has no session id context: a returning mTLS client would fail its handshake. tls.Server sets one on
    // its own context only, and handshakes start from this one. Sessions stay per context (its cache, its ticket
    // keys), so the value only has to exist and fit OpenSSL's 32 bytes.
    ...(ca !== undefined ? { ca, sessionIdContext: createHash('sha256').update(id).digest('hex').slice(0, 32) } : {}),
  };
  const context = tls.createSecureContext(options);
  let skipMtls: SslChoice['skipMtls'] = null;
  const patterns = strings(client?.skip_mtls_uri_regex);
  if (patterns.length > 0) {
    // Compiled once per ssl object (config time); nginx matches them against $uri.
    const res = patterns.map((p) => new RegExp(p));
    skipMtls = (path) => res.some((re) => re.test(path));
  }
  const depth = typeof client?.depth === 'number' && client.depth >= 0 ? client.depth : 1;
  const caCerts = ca === undefined ? [] : (ca.match(PEM_CERT) ?? []).map((pem) => new X509Certificate(pem));
  return { sslId: id, context, options, mtls: ca !== undefined, skipMtls, depth, caCerts };
}

export class CertificateStore {
  private readonly exact = new Map<string, SslChoice>();
  private readonly wildcard = new Map<string, SslChoice>();
  /** id -> built context, carried to the next snapshot's store. */
  readonly cache = new Map<string, Cached>();

  constructor(items: readonly SslItem[], previous: CertificateStore | null, logger: Logger, defaults: TlsDefaults = {}) {
    for (const item of items) {
      const v = item.value;
      if ((v.type ?? 'server') !== 'server' || v.status === 0) continue;
      const names = typeof v.sni === 'string' ? [v.sni] : strings(v.snis);
      if (names.length === 0) continue;
      let entry = previous?.cache.get(item.id);
      if (entry === undefined || (entry.value !== v && entry.modifiedIndex !== item.modifiedIndex)) {
        try {
          entry = { modifiedIndex: item.modifiedIndex, value: v, choice: buildChoice(item.id, v, defaults) };
        } catch (err) {
          logger.warn({ ssl: item.id, error: (err as Error).message }, 'ssl skipped: bad certificate, key or CA');
          continue;
        }
      }
      this.cache.set(item.id, entry);
      for (const raw of names) {
        const name = raw.toLowerCase();
        const map = name.startsWith('*.') ? this.wildcard : this.exact;
        const key = name.startsWith('*.') ? name.slice(2) : name;
        // First ssl in storage order wins a duplicated SNI.
        if (!map.has(key)) map.set(key, entry.choice);
      }
    }
  }

  get size(): number {
    return this.cache.size;
  }

  lookup(servername: string): SslChoice | undefined {
    const name = servername.toLowerCase();
    const hit = this.exact.get(name);
    if (hit !== undefined) return hit;
    const dot = name.indexOf('.');
    return dot > 0 ? this.wildcard.get(name.slice(dot + 1)) : undefined;
  }
}

/** Builds the store from the ssls of a snapshot, reusing the previous store's contexts. */
export function buildCertificateStore(snapshot: Snapshot, previous: CertificateStore | null, logger: Logger, defaults: TlsDefaults = {}): CertificateStore {
  const ssls = snapshot.list('ssls').map((s) => ({ id: s.item.id, modifiedIndex: s.item.modifiedIndex, value: s.value }));
  return new CertificateStore(ssls, previous, logger, defaults);
}

/** RuntimeBuilder (src/runtime/manager.ts) of the shared certificate store: rebuilt only when ssls change. */
export class TlsRuntimeBuilder {
  readonly name = 'tls';
  readonly kinds = ['ssls'] as const;
  private readonly logger: Logger;
  private readonly defaults: TlsDefaults;

  constructor(logger: Logger, defaults: TlsDefaults = {}) {
    this.logger = logger;
    this.defaults = defaults;
  }

  build(snapshot: Snapshot, previous: CertificateStore | null): CertificateStore {
    return buildCertificateStore(snapshot, previous, this.logger, this.defaults);
  }
}

// The ssl object a handshake used, recorded on the TLS socket for the HTTP layer (mTLS policy per request).
const kChoice = Symbol('switchyard.sslChoice');
type Tagged = { [kChoice]?: SslChoice };

export function tagSslChoice(socket: TLSSocket, choice: SslChoice): void {
  (socket as TLSSocket & Tagged)[kChoice] = choice;
}

export function sslChoiceOf(socket: TLSSocket): SslChoice | undefined {
  return (socket as TLSSocket & Tagged)[kChoice];
}

// The certificates a client sent after its own (its intermediates), read as the handshake completes.
const kSent = Symbol('switchyard.sentChain');
type ChainTagged = TLSSocket & { [kSent]?: X509Certificate[] | null };

/**
 * A 'secure' listener that runs before node's own: node (24.x, nodejs/node#65579) reads the peer certificate
 * there in a way that drops the client's intermediates from what getPeerCertificate(true) shows afterwards, and
 * `client.depth` needs them.
 */
function captureSentChain(this: ChainTagged): void {
  const sent: X509Certificate[] = [];
  let cur: DetailedPeerCertificate | undefined = this.getPeerCertificate(true);
  for (let i = 0; i < 100 && cur !== undefined && cur.raw !== undefined; i++) {
    const up: DetailedPeerCertificate | undefined = cur.issuerCertificate;
    if (up === undefined || up === null || up === cur || up.raw === undefined) break;
    sent.push(new X509Certificate(up.raw));
    cur = up;
  }
  this[kSent] = sent;
}

/** Arranges for the client's certificate chain to be kept (once per connection, before its handshake ends). */
export function keepClientChain(socket: TLSSocket): void {
  const s = socket as ChainTagged;
  if (s[kSent] !== undefined) return;
  s[kSent] = null;
  s.prependListener('secure', captureSentChain);
}

/**
 * `client.depth` as nginx's ssl_verify_depth (OpenSSL's verify depth): at most `depth` intermediate CA
 * certificates between a client certificate node already verified and the self-signed anchor of client.ca.
 * The chain is rebuilt as OpenSSL builds it, trusted certificates first: each issuer is looked up in client.ca,
 * then among the certificates the client sent.
 */
export function chainWithinDepth(socket: TLSSocket, choice: SslChoice, leaf: Buffer): boolean {
  return sentChainWithinDepth(choice, new X509Certificate(leaf), (socket as ChainTagged)[kSent] ?? []);
}

/**
 * chainWithinDepth for a client certificate `leaf` and the certificates the client sent after it, however the
 * TLS layer reports them (HTTP/3 reads them from the QUIC connection).
 */
export function sentChainWithinDepth(choice: SslChoice, leaf: X509Certificate, sent: readonly X509Certificate[]): boolean {
  let cur = leaf;
  for (let n = 0; n <= choice.depth; n++) {
    const trusted = choice.caCerts.find((c) => cur.checkIssued(c));
    if (trusted !== undefined && trusted.checkIssued(trusted)) return true;
    const next = trusted ?? sent.find((c) => cur.checkIssued(c));
    if (next === undefined) return false;
    cur = next;
  }
  return false;
}

type VerifyHandle = { verifyError(): (Error & { code?: string }) | null };

/**
 * Why a connection whose ssl object has `client.ca` must not proceed, or null when its client certificate was
 * verified against client.ca within client.depth. For handshakes started outside a tls.Server (the TLS stream
 * listener builds its TLSSocket itself), where node sets neither `authorized` nor `authorizationError`: the
 * verification result is read from the TLS handle as node's own server does. Call it once 'secure' fired, on a
 * socket keepClientChain() was applied to before the handshake.
 */
export function clientCertRefusal(socket: TLSSocket, choice: SslChoice): string | null {
  const peer = socket.getPeerCertificate();
  // A completed handshake without a peer certificate is refused too: node's own server notes that a TLS 1.3 PSK
  // handshake reports X509_V_OK without one. (A resumed session keeps its certificate: resumption passes.)
  if (peer === null || peer === undefined || peer.raw === undefined) return 'no client certificate';
  const handle = (socket as TLSSocket & { _handle?: VerifyHandle | null })._handle;
  if (handle === null || handle === undefined) return 'connection closed';
  const err = handle.verifyError();
  if (err !== null && err !== undefined) return `client certificate verify failed: ${err.code ?? err.message}`;
  // OpenSSL (nginx's ssl_verify_depth) stops looking for issuers at the depth: a longer chain lacks its issuer.
  if (!chainWithinDepth(socket, choice, peer.raw)) return 'client certificate verify failed: unable to get local issuer certificate (chain deeper than client.depth)';
  return null;
}

/**
 * A certificate's subject or issuer as the ssl_client_s_dn / ssl_client_i_dn variables show it: its RDNs in
 * certificate order, `C=x,O=y,CN=z`, a multi-valued attribute joined with `+`.
 */
export function distinguishedName(o: Record<string, string | string[]> | undefined): string {
  if (o === undefined) return '';
  const parts: string[] = [];
  for (const k in o) {
    const v = o[k];
    parts.push(`${k}=${Array.isArray(v) ? v.join('+') : v}`);
  }
  return parts.join(',');
}
