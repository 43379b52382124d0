// Active probe contract and registry: one file per probe type (probe-http.ts, probe-tcp.ts, probe-udp.ts,
// probe-grpc.ts), each registering itself through setup(registry). A probe never throws and never outlives
// `timeout`.
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
