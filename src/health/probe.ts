// Active probe contract and registry: one file per probe type (probe-http.ts, probe-tcp.ts, probe-udp.ts,
// probe-grpc.ts), each registering itself through setup(registry). A probe resolves, never rejects, and never
// outlives `timeout`; the checker still guards the await (a rejection would end the process).
import type { ActiveConf } from './conf.ts';
import type { FailureKind } from './state.ts';

export interface ProbeTarget {
  /** Address to connect to (node ip, or `checks.active.port` overriding the node port). */
  readonly ip: string;
  readonly port: number;
  /** Host header / SNI: `checks.active.host`, else the node's configured hostname. */
  readonly hostname: string;
}

/** success and failure feed the counters; `ignored` (a status in neither list) leaves them untouched. */
export type ProbeResult =
  | { readonly kind: 'success' }
  | { readonly kind: 'failure'; readonly failure: FailureKind; readonly detail: string }
  | { readonly kind: 'ignored' };

export type Probe = (target: ProbeTarget, conf: ActiveConf) => Promise<ProbeResult>;

export const SUCCESS: ProbeResult = Object.freeze({ kind: 'success' });
export const IGNORED: ProbeResult = Object.freeze({ kind: 'ignored' });

export function failure(kind: FailureKind, detail: string): ProbeResult {
  return { kind: 'failure', failure: kind, detail };
}

/** RFC 9110 token: what node accepts as a header name. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Field values node accepts: no control characters but HTAB. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** Connection-specific fields HTTP/2 forbids (RFC 9113 8.2.2): node's session.request throws on them. */
const H2_FORBIDDEN = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te']);

/**
 * Adds `checks.active.req_headers` ("Name: value" lines) to a probe's request headers, lower-cased. Lines that
 * node would refuse (no name, a name that is not a token, a value with control characters) are skipped, and so
 * are pseudo-headers; over HTTP/2 also the connection-specific fields (the probe sets its own `te: trailers`,
 * and `:authority` stands for Host), so a configured header can never make the request throw.
 */
export function probeHeaders(lines: readonly string[], out: Record<string, string>, http2: boolean): void {
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) continue;
    if (http2 && H2_FORBIDDEN.has(name)) continue;
    out[name] = value;
  }
}

export class ProbeRegistry {
  private readonly probes = new Map<string, Probe>();

  register(type: string, probe: Probe): void {
    if (this.probes.has(type)) throw new Error(`probe type ${type} registered twice`);
    this.probes.set(type, probe);
  }

  get(type: string): Probe | undefined {
    return this.probes.get(type);
  }
}
