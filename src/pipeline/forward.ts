// Header rules between client, gateway and upstream: hop-by-hop removal, Host per pass_host,
// X-Forwarded-* and X-Real-IP with a trusted-proxy list.
import { BlockList, isIPv6 } from 'node:net';
import type { HeaderMap } from '../plugin/context.ts';

/** RFC 9110 7.6.1 connection-specific fields, plus fields a proxy must not forward. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
  'http2-settings',
]);

/** Client-supplied headers that only a trusted proxy may set. */
const FORWARDED = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-real-ip', 'forwarded'];

export class TrustedProxies {
  private readonly list: BlockList | null;
  constructor(cidrs: readonly string[]) {
    if (cidrs.length === 0) {
      this.list = null;
      return;
    }
    const list = new BlockList();
    for (const c of cidrs) {
      const [addr, bits] = c.split('/');
      const type = isIPv6(addr!) ? 'ipv6' : 'ipv4';
      if (bits === undefined) list.addAddress(addr!, type);
      else list.addSubnet(addr!, Number(bits), type);
    }
    this.list = list;
  }
  trusts(addr: string): boolean {
    if (this.list === null) return false;
    return this.list.check(addr, isIPv6(addr) ? 'ipv6' : 'ipv4');
  }
}

/** Names listed in the Connection header are hop-by-hop too. */
function connectionTokens(v: string | string[] | undefined): string[] | null {
  if (v === undefined) return null;
  const s = Array.isArray(v) ? v.join(',') : v;
  if (s.indexOf(',') < 0 && (s === 'close' || s === 'keep-alive' || s === 'Keep-Alive' || s === 'upgrade' || s === 'Upgrade')) return null;
  return s.split(',').map((t) => t.trim().toLowerCase());
}

export interface ForwardInfo {
  /** The client's host without port (nginx $host), for X-Forwarded-Host. */
  readonly host: string;
  readonly peerAddr: string;
  readonly remoteAddr: string;
  readonly scheme: string;
  readonly serverPort: number;
  readonly trusted: boolean;
  /** Keep `te: trailers` (gRPC). */
  readonly keepTeTrailers: boolean;
  readonly upgrade: boolean;
}

// hot path
export function upstreamHeaders(src: HeaderMap, info: ForwardInfo): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const extra = connectionTokens(src['connection']);
  for (const name in src) {
    const v = src[name];
    if (v === undefined || name.charCodeAt(0) === 58 /* ':' pseudo header */) continue;
    if (HOP_BY_HOP.has(name)) {
      if (name === 'te' && info.keepTeTrailers) out.te = 'trailers';
      continue;
    }
    if (extra !== null && extra.includes(name)) continue;
    out[name] = v;
  }
  if (info.upgrade) {
    const up = src['upgrade'];
    if (up !== undefined) {
      out.upgrade = up;
      out.connection = 'upgrade';
    }
  }
  if (!info.trusted) for (const h of FORWARDED) delete out[h];
  const prior = out['x-forwarded-for'];
  out['x-forwarded-for'] = prior === undefined ? info.remoteAddr : `${Array.isArray(prior) ? prior.join(', ') : prior}, ${info.peerAddr}`;
  if (out['x-forwarded-proto'] === undefined) out['x-forwarded-proto'] = info.scheme;
  if (out['x-forwarded-host'] === undefined) out['x-forwarded-host'] = info.host;
  if (out['x-forwarded-port'] === undefined) out['x-forwarded-port'] = String(info.serverPort);
  out['x-real-ip'] = info.remoteAddr;
  return out;
}

/** Upstream response headers for the client: hop-by-hop removed. */
// hot path
export function downstreamHeaders(src: Record<string, string | string[] | undefined>, into: HeaderMap): void {
  const extra = connectionTokens(src['connection']);
  for (const name in src) {
    const v = src[name];
    if (v === undefined || name.charCodeAt(0) === 58 || HOP_BY_HOP.has(name)) continue;
    if (extra !== null && extra.includes(name)) continue;
    into[name] = v;
  }
}

/** `[::1]` for IPv6 literals in Host headers. */
export function hostWithPort(host: string, port: number, defaultPort: number): string {
  const h = isIPv6(host) ? `[${host}]` : host;
  return port === defaultPort ? h : `${h}:${port}`;
}
