// Certificate facts for the dashboard's SSL page (expiry, names), parsed server-side with node's X509 parser so
// the browser needs no ASN.1 reader. Private keys are never read here.
import { X509Certificate } from 'node:crypto';
import type { ConfigStore } from '../../config/store.ts';

export interface CertSummary {
  readonly subject: string;
  readonly issuer: string;
  readonly not_before: string;
  readonly not_after: string;
  /** Seconds since the epoch, for sorting and "expires in" without date parsing in the browser. */
  readonly expires_at: number;
  readonly dns_names: readonly string[];
  readonly fingerprint256: string;
}

export interface SslSummary {
  readonly id: string;
  readonly snis: readonly string[];
  readonly type: string;
  /** The leaf of `cert` followed by the leaves of `certs` (APISIX's extra certificates for other key types). */
  readonly certs: readonly (CertSummary | { readonly error: string })[];
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

function dnsNames(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  if (san === undefined) return [];
  const out: string[] = [];
  for (const part of san.split(', ')) if (part.startsWith('DNS:')) out.push(part.slice(4));
  return out;
}

/** The leaf certificate of a PEM bundle; secrets references ($secret://, $env://) are reported, not resolved. */
export function summarizeCert(pem: unknown): CertSummary | { error: string } {
  if (typeof pem !== 'string') return { error: 'no certificate' };
  if (pem.startsWith('$secret://') || pem.startsWith('$env://')) return { error: 'stored as a secret reference' };
  const m = PEM_CERT.exec(pem);
  if (m === null) return { error: 'not a PEM certificate' };
  try {
    const cert = new X509Certificate(m[0]);
    return {
      subject: cert.subject.replaceAll('\n', ', '),
      issuer: cert.issuer.replaceAll('\n', ', '),
      not_before: new Date(cert.validFrom).toISOString(),
      not_after: new Date(cert.validTo).toISOString(),
      expires_at: Math.floor(Date.parse(cert.validTo) / 1000),
      dns_names: dnsNames(cert),
      fingerprint256: cert.fingerprint256,
    };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

export async function sslSummaries(store: ConfigStore): Promise<SslSummary[]> {
  const items = await store.fetchList('ssls');
  return items.map((it) => {
    const v = it.value;
    const snis = Array.isArray(v.snis) ? v.snis.filter((s): s is string => typeof s === 'string') : typeof v.sni === 'string' ? [v.sni] : [];
    const certs = [summarizeCert(v.cert), ...(Array.isArray(v.certs) ? v.certs.map(summarizeCert) : [])];
    return { id: it.id, snis, type: typeof v.type === 'string' ? v.type : 'server', certs };
  });
}
