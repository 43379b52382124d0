// Downstream TLS certificates for stream tls listeners, from `ssls` of type server with status 1.
// Secure contexts are built at snapshot time and reused across snapshots while the ssl object is unchanged.
// SNI lookup follows APISIX's SSL matcher: exact name first, then a wildcard covering exactly one label
// (`*.x.com` matches `a.x.com`, not `a.b.x.com`).
import tls, { type SecureContext } from 'node:tls';
import type { JsonObject } from '../src/config/resources.ts';
import type { Logger } from '../src/observability/logger.ts';
import type { ServerCertificates } from './types.ts';

export interface SslItem {
  readonly id: string;
  readonly modifiedIndex: number;
  readonly value: JsonObject;
}

interface Cached {
  readonly modifiedIndex: number;
  readonly value: JsonObject;
  readonly context: SecureContext;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** `ssl_protocols` (TLSv1.1..TLSv1.3) -> Node's minVersion/maxVersion. */
function versionRange(v: JsonObject): { minVersion?: tls.SecureVersion; maxVersion?: tls.SecureVersion } {
  const list = strings(v.ssl_protocols).filter((p): p is tls.SecureVersion => p === 'TLSv1.1' || p === 'TLSv1.2' || p === 'TLSv1.3');
  if (list.length === 0) return {};
  list.sort();
  return { minVersion: list[0], maxVersion: list[list.length - 1] };
}

function buildContext(v: JsonObject): SecureContext {
  const certs = [v.cert, ...strings(v.certs)].filter((x): x is string => typeof x === 'string');
  const keys = [v.key, ...strings(v.keys)].filter((x): x is string => typeof x === 'string');
  return tls.createSecureContext({ cert: certs, key: keys, ...versionRange(v) });
}

export class CertificateStore implements ServerCertificates {
  private readonly exact = new Map<string, SecureContext>();
  private readonly wildcard = new Map<string, SecureContext>();
  /** id -> built context, carried to the next snapshot's store. */
  readonly cache = new Map<string, Cached>();

  constructor(items: readonly SslItem[], previous: CertificateStore | null, logger: Logger) {
    for (const item of items) {
      const v = item.value;
      if ((v.type ?? 'server') !== 'server' || v.status === 0) continue;
      const names = typeof v.sni === 'string' ? [v.sni] : strings(v.snis);
      if (names.length === 0) continue;
      let entry = previous?.cache.get(item.id);
      if (entry === undefined || (entry.value !== v && entry.modifiedIndex !== item.modifiedIndex)) {
        try {
          entry = { modifiedIndex: item.modifiedIndex, value: v, context: buildContext(v) };
        } catch (err) {
          logger.warn({ ssl: item.id, error: (err as Error).message }, 'ssl skipped: bad certificate or key');
          continue;
        }
      }
      this.cache.set(item.id, entry);
      for (const raw of names) {
        const name = raw.toLowerCase();
        const map = name.startsWith('*.') ? this.wildcard : this.exact;
        const key = name.startsWith('*.') ? name.slice(2) : name;
        // First ssl in storage order wins a duplicated SNI.
        if (!map.has(key)) map.set(key, entry.context);
      }
    }
  }

  get size(): number {
    return this.cache.size;
  }

  contextFor(servername: string): SecureContext | undefined {
    const name = servername.toLowerCase();
    const hit = this.exact.get(name);
    if (hit !== undefined) return hit;
    const dot = name.indexOf('.');
    return dot > 0 ? this.wildcard.get(name.slice(dot + 1)) : undefined;
  }
}
