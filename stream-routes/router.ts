// L4 stream route matching (APISIX stream router semantics).
// 1. When the client sent SNI, routes with `sni` are tried: exact names first, then leading wildcards
//    (`*.x.com` matches any depth below x.com, longest suffix first); within one SNI, routes in storage order
//    whose address constraints match. 2. Otherwise (or when no SNI route matched) routes without `sni` are
//    scanned in storage order; the first whose remote_addr / server_addr (IP or CIDR) and server_port
//    (exact) all match wins. An absent field matches anything. Routes with protocol.superior_id are xRPC
//    subordinates and never match directly.
import { BlockList } from 'node:net';
import type { JsonObject } from '../src/config/resources.ts';

export interface StreamRouteEntry {
  readonly id: string;
  readonly value: JsonObject;
}

export interface StreamMatchQuery {
  /** Local address the client connected to (IPv4-mapped IPv6 already unwrapped). */
  readonly serverAddr: string;
  readonly serverPort: number;
  readonly remoteAddr: string;
  /** SNI the client sent (TLS termination or ClientHello peek), absent otherwise. */
  readonly sni?: string | undefined;
}

export interface StreamRouter<E extends StreamRouteEntry = StreamRouteEntry> {
  match(q: StreamMatchQuery): E | null;
  /** Whether any route has `sni` (listeners only peek for a ClientHello when this is true). */
  readonly hasSniRoutes: boolean;
  readonly size: number;
}

/** An IP or CIDR matcher compiled once; `null` matches anything. */
export class AddrMatcher {
  private readonly list = new BlockList();

  constructor(spec: string) {
    const slash = spec.indexOf('/');
    const ip = slash < 0 ? spec : spec.slice(0, slash);
    const family = ip.includes(':') ? 'ipv6' : 'ipv4';
    if (slash < 0) this.list.addAddress(ip, family);
    else this.list.addSubnet(ip, Number(spec.slice(slash + 1)), family);
  }

  // hot path
  matches(addr: string): boolean {
    return this.list.check(addr, addr.includes(':') ? 'ipv6' : 'ipv4');
  }
}

interface Compiled<E> {
  readonly entry: E;
  readonly remote: AddrMatcher | null;
  readonly server: AddrMatcher | null;
  readonly port: number;
}

function compile<E extends StreamRouteEntry>(entry: E): Compiled<E> {
  const v = entry.value;
  return {
    entry,
    remote: typeof v.remote_addr === 'string' ? new AddrMatcher(v.remote_addr) : null,
    server: typeof v.server_addr === 'string' ? new AddrMatcher(v.server_addr) : null,
    port: typeof v.server_port === 'number' ? v.server_port : 0,
  };
}

// hot path
function firstHit<E>(list: readonly Compiled<E>[], q: StreamMatchQuery): E | null {
  for (let i = 0; i < list.length; i++) {
    const c = list[i]!;
    if (c.port !== 0 && c.port !== q.serverPort) continue;
    if (c.remote !== null && !c.remote.matches(q.remoteAddr)) continue;
    if (c.server !== null && !c.server.matches(q.serverAddr)) continue;
    return c.entry;
  }
  return null;
}

function isSubordinate(v: JsonObject): boolean {
  const p = v.protocol;
  return typeof p === 'object' && p !== null && !Array.isArray(p) && p.superior_id !== undefined && p.superior_id !== null;
}

export function buildStreamRouter<E extends StreamRouteEntry>(routes: readonly E[]): StreamRouter<E> {
  const exact = new Map<string, Compiled<E>[]>();
  const wildcard = new Map<string, Compiled<E>[]>();
  const others: Compiled<E>[] = [];
  let size = 0;
  for (const r of routes) {
    if (isSubordinate(r.value)) continue;
    size++;
    const sni = r.value.sni;
    if (typeof sni !== 'string' || sni === '') {
      others.push(compile(r));
      continue;
    }
    const name = sni.toLowerCase();
    // `*.x.com` is stored by its suffix `.x.com`; a bare `*` matches every SNI.
    const map = name.startsWith('*') ? wildcard : exact;
    const key = name.startsWith('*') ? name.slice(1) : name;
    let bucket = map.get(key);
    if (bucket === undefined) map.set(key, (bucket = []));
    bucket.push(compile(r));
  }
  // Longest suffix first, as a radix tree over the reversed name would try them.
  const wild = [...wildcard.entries()].sort((a, b) => b[0].length - a[0].length);
  const hasSniRoutes = exact.size > 0 || wild.length > 0;

  return {
    hasSniRoutes,
    size,
    // hot path
    match(q: StreamMatchQuery): E | null {
      if (hasSniRoutes && q.sni !== undefined && q.sni !== '') {
        const name = q.sni.toLowerCase();
        const bucket = exact.get(name);
        if (bucket !== undefined) {
          const hit = firstHit(bucket, q);
          if (hit !== null) return hit;
        }
        for (let i = 0; i < wild.length; i++) {
          const [suffix, list] = wild[i]!;
          if (name.length > suffix.length && name.endsWith(suffix)) {
            const hit = firstHit(list, q);
            if (hit !== null) return hit;
          }
        }
      }
      return firstHit(others, q);
    },
  };
}

/** Unwraps IPv4-mapped IPv6 (`::ffff:1.2.3.4`) so IPv4 rules match dual-stack sockets. */
export function normalizeAddr(addr: string | undefined): string {
  if (addr === undefined) return '';
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}
