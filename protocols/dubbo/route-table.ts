// The `protocol.conf` of Dubbo stream routes (Switchyard design in APISIX's xRPC style; APISIX's own dubbo
// xRPC schema is an empty object and routes nothing):
//   superior route   protocol: {name: "dubbo", conf: {max_frame_size?, timeout?, max_pending?}}
//     max_frame_size  integer bytes, largest frame body accepted from clients and providers (default 8 MiB)
//     timeout         number seconds, per call (default: the upstream's timeout.read, else 60 s)
//     max_pending     integer, calls in flight per client connection; reading pauses there (default 1000)
//   subordinate      protocol: {name: "dubbo", superior_id: "<superior id>", conf: {service_name, service_version?, method?}}
//     A call whose service (and version / method when given) matches goes to the subordinate's upstream;
//     subordinates are tried in storage order; no match uses the superior's upstream.
// Compiled once per route object (route objects are immutable per snapshot).
import type { StreamRoute, StreamRuntime } from '../../stream-routes/types.ts';
import { xrpcConf } from '../../stream-routes/xrpc.ts';
import type { UpstreamRuntime } from '../../src/upstream/upstream.ts';
import { DEFAULT_MAX_FRAME, type RequestHead } from './codec.ts';

export const DEFAULT_MAX_PENDING = 1000;

interface Subordinate {
  readonly routeId: string;
  readonly service: string;
  readonly version: string | undefined;
  readonly method: string | undefined;
  readonly upstream: UpstreamRuntime | null;
}

export interface RouteTable {
  readonly maxFrameSize: number;
  /** Null: use the upstream's read timeout. */
  readonly timeoutMs: number | null;
  readonly maxPending: number;
  readonly subordinates: readonly Subordinate[];
}

export type Compiled = { readonly ok: true; readonly table: RouteTable } | { readonly ok: false; readonly reason: string };

const cache = new WeakMap<StreamRoute, Compiled>();

function posInt(v: unknown, name: string, max: number): number | string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) return `${name} must be an integer between 1 and ${max}`;
  return v;
}

function compile(route: StreamRoute, runtime: StreamRuntime): Compiled {
  const conf = xrpcConf(route);
  const mfs = posInt(conf.max_frame_size, 'max_frame_size', 0x7fffffff);
  if (typeof mfs === 'string') return { ok: false, reason: mfs };
  const mp = posInt(conf.max_pending, 'max_pending', 1_000_000);
  if (typeof mp === 'string') return { ok: false, reason: mp };
  const t = conf.timeout;
  if (t !== undefined && (typeof t !== 'number' || !(t > 0))) return { ok: false, reason: 'timeout must be a number of seconds > 0' };
  const subordinates: Subordinate[] = [];
  for (const sub of runtime.subordinatesOf?.(route.id) ?? []) {
    const c = xrpcConf(sub);
    const p = sub.value.protocol as { name?: unknown };
    if (p.name !== 'dubbo' || typeof c.service_name !== 'string' || c.service_name === '') continue;
    subordinates.push({
      routeId: sub.id,
      service: c.service_name,
      version: typeof c.service_version === 'string' ? c.service_version : undefined,
      method: typeof c.method === 'string' ? c.method : undefined,
      upstream: sub.broken === null ? sub.upstream : null,
    });
  }
  return {
    ok: true,
    table: {
      maxFrameSize: mfs ?? DEFAULT_MAX_FRAME,
      timeoutMs: typeof t === 'number' ? Math.round(t * 1000) : null,
      maxPending: mp ?? DEFAULT_MAX_PENDING,
      subordinates,
    },
  };
}

export function routeTable(route: StreamRoute, runtime: StreamRuntime): Compiled {
  let c = cache.get(route);
  if (c === undefined) cache.set(route, (c = compile(route, runtime)));
  return c;
}

/** The subordinate a call matches, or null (the superior's upstream applies). */
export function matchSubordinate(table: RouteTable, head: RequestHead): Subordinate | null {
  // hot path
  const subs = table.subordinates;
  for (let i = 0; i < subs.length; i++) {
    const s = subs[i]!;
    if (s.service !== head.service) continue;
    if (s.version !== undefined && s.version !== head.version) continue;
    if (s.method !== undefined && s.method !== head.method) continue;
    return s;
  }
  return null;
}
