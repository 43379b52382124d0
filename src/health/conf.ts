// `upstream.checks` normalised into a frozen HealthConf with APISIX's defaults (the snapshot already applies
// schema defaults; they are applied again here so hand-built confs and tests behave the same). Status lists
// become Sets so the per-outcome lookups are O(1).
import type { JsonObject } from '../config/resources.ts';

export type ProbeType = 'http' | 'https' | 'tcp' | 'udp' | 'grpc' | 'grpcs';

export interface ActiveConf {
  readonly type: ProbeType;
  /** Seconds; bounds each probe from connect to the status line (or datagram). */
  readonly timeout: number;
  readonly concurrency: number;
  readonly host: string | null;
  readonly port: number | null;
  readonly method: string;
  readonly path: string;
  readonly body: string;
  readonly verifyCertificate: boolean;
  /** `Name: value` strings as configured. */
  readonly reqHeaders: readonly string[];
  readonly udpPayload: Buffer;
  readonly udpExpect: Buffer | null;
  /** grpc/grpcs probes: the service name of grpc.health.v1.HealthCheckRequest ('' = the whole server). */
  readonly grpcService: string;
  readonly healthy: { readonly interval: number; readonly statuses: ReadonlySet<number>; readonly successes: number };
  readonly unhealthy: {
    readonly interval: number;
    readonly statuses: ReadonlySet<number>;
    readonly httpFailures: number;
    readonly tcpFailures: number;
    readonly timeouts: number;
  };
}

/** Thresholds of 0 disable that kind of transition (APISIX allows 0 for passive counters). */
export interface PassiveConf {
  readonly type: 'http' | 'https' | 'tcp';
  readonly healthy: { readonly statuses: ReadonlySet<number>; readonly successes: number };
  readonly unhealthy: {
    readonly statuses: ReadonlySet<number>;
    readonly httpFailures: number;
    readonly tcpFailures: number;
    readonly timeouts: number;
  };
}

export interface HealthConf {
  readonly active: ActiveConf | null;
  readonly passive: PassiveConf | null;
  /** JSON of `checks`: a checker whose checks are unchanged keeps its targets' state across config changes. */
  readonly json: string;
}

const ACTIVE_HEALTHY = [200, 302];
const ACTIVE_UNHEALTHY = [429, 404, 500, 501, 502, 503, 504, 505];
const PASSIVE_HEALTHY = [200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308];
const PASSIVE_UNHEALTHY = [429, 500, 503];

function obj(v: unknown): JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : {};
}

function num(v: unknown, dflt: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : dflt;
}

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

function statuses(v: unknown, dflt: number[]): ReadonlySet<number> {
  return new Set(Array.isArray(v) ? v.filter((s): s is number => typeof s === 'number') : dflt);
}

function hex(v: unknown): Buffer | null {
  return typeof v === 'string' ? Buffer.from(v, 'hex') : null;
}

function activeOf(a: JsonObject): ActiveConf {
  const h = obj(a.healthy);
  const u = obj(a.unhealthy);
  const type = (str(a.type) ?? 'http') as ProbeType;
  return Object.freeze({
    type,
    timeout: Math.max(0.001, num(a.timeout, 1)),
    concurrency: Math.max(1, Math.floor(num(a.concurrency, 10))),
    host: str(a.host),
    port: typeof a.port === 'number' ? a.port : null,
    method: str(a.http_method) ?? 'GET',
    path: str(a.http_path) ?? '/',
    body: str(a.http_req_body) ?? '',
    verifyCertificate: a.https_verify_certificate !== false,
    reqHeaders: Array.isArray(a.req_headers) ? a.req_headers.filter((x): x is string => typeof x === 'string') : [],
    udpPayload: hex(a.udp_payload) ?? Buffer.alloc(0),
    udpExpect: hex(a.udp_expect),
    grpcService: str(a.grpc_service) ?? '',
    healthy: Object.freeze({
      interval: Math.max(1, num(h.interval, 1)),
      statuses: statuses(h.http_statuses, ACTIVE_HEALTHY),
      successes: num(h.successes, 2),
    }),
    unhealthy: Object.freeze({
      interval: Math.max(1, num(u.interval, 1)),
      statuses: statuses(u.http_statuses, ACTIVE_UNHEALTHY),
      httpFailures: num(u.http_failures, 5),
      tcpFailures: num(u.tcp_failures, 2),
      timeouts: num(u.timeouts, 3),
    }),
  });
}

function passiveOf(p: JsonObject): PassiveConf {
  const h = obj(p.healthy);
  const u = obj(p.unhealthy);
  const type = str(p.type);
  return Object.freeze({
    type: type === 'https' || type === 'tcp' ? type : 'http',
    healthy: Object.freeze({ statuses: statuses(h.http_statuses, PASSIVE_HEALTHY), successes: num(h.successes, 5) }),
    unhealthy: Object.freeze({
      statuses: statuses(u.http_statuses, PASSIVE_UNHEALTHY),
      httpFailures: num(u.http_failures, 5),
      tcpFailures: num(u.tcp_failures, 2),
      timeouts: num(u.timeouts, 7),
    }),
  });
}

/** The health conf of an upstream, or null when it has no `checks`. */
export function healthConfOf(upstream: JsonObject): HealthConf | null {
  const checks = upstream.checks;
  if (typeof checks !== 'object' || checks === null || Array.isArray(checks)) return null;
  const active = checks.active !== undefined ? activeOf(obj(checks.active)) : null;
  const passive = checks.passive !== undefined ? passiveOf(obj(checks.passive)) : null;
  if (active === null && passive === null) return null;
  return Object.freeze({ active, passive, json: JSON.stringify(checks) });
}

/** The `type` shown by the control API (APISIX reports the active type). */
export function checkType(conf: HealthConf): string {
  return conf.active?.type ?? conf.passive?.type ?? 'http';
}
