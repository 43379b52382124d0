// config.yaml `apisix.stream_proxy` -> listener specs. Accepted entry forms (APISIX): a port number,
// "ip:port" ("[v6]:port"), a "from-to" port range, or {addr, tls, proxy_protocol, proxy_protocol_to_upstream}
// where addr is any of the former. Switchyard extension: proxy_protocol_to_upstream (true = v1, or "v1" |
// "v2") sends a PROXY protocol header to the upstream on connections accepted by that listener; the global
// `apisix.proxy_protocol.enable_tcp_pp` / `enable_tcp_pp_to_upstream` apply to every TCP listener as in APISIX.

export type ProxyProtocolVersion = 'v1' | 'v2';

export interface TcpListenSpec {
  /** "ip:port", IPv6 bracketed. */
  readonly addr: string;
  readonly tls: boolean;
  /** Expect a PROXY protocol (v1 or v2) header from the client; its source address becomes remote_addr. */
  readonly proxyProtocol?: boolean;
  readonly proxyProtocolToUpstream?: ProxyProtocolVersion;
}

export interface UdpListenSpec {
  readonly addr: string;
}

export interface StreamProxyConf {
  readonly tcp: TcpListenSpec[];
  readonly udp: UdpListenSpec[];
}

export interface ParseStreamOptions {
  /** Address used for bare ports and ranges; 0.0.0.0 in production, 127.0.0.1 in tests. */
  defaultIp?: string;
  /** `apisix.proxy_protocol` of config.yaml. */
  proxyProtocol?: { enable_tcp_pp?: boolean; enable_tcp_pp_to_upstream?: boolean | string } | undefined;
}

/** Bound on ports expanded from one "from-to" range. */
const MAX_RANGE = 1024;

type Entry = number | string | { addr: number | string; tls?: boolean; proxy_protocol?: boolean; proxy_protocol_to_upstream?: boolean | string };

function checkPort(p: number, raw: unknown): number {
  if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`stream_proxy: invalid port in ${JSON.stringify(raw)}`);
  return p;
}

/** Splits "ip:port" / "[v6]:port"; returns null for a bare port or range. */
export function splitHostPort(addr: string): { host: string; port: number } | null {
  if (addr.startsWith('[')) {
    const end = addr.indexOf(']:');
    if (end < 0) return null;
    return { host: addr.slice(1, end), port: Number(addr.slice(end + 2)) };
  }
  const colon = addr.lastIndexOf(':');
  if (colon <= 0) return null;
  return { host: addr.slice(0, colon), port: Number(addr.slice(colon + 1)) };
}

export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Expands one address form into "ip:port" strings. */
function expandAddr(raw: number | string, defaultIp: string): string[] {
  if (typeof raw === 'number') return [joinHostPort(defaultIp, checkPort(raw, raw))];
  const text = raw.trim();
  const range = /^(\d+)-(\d+)$/.exec(text);
  if (range) {
    const from = checkPort(Number(range[1]), raw);
    const to = checkPort(Number(range[2]), raw);
    if (to < from || to - from + 1 > MAX_RANGE) throw new Error(`stream_proxy: bad port range ${raw}`);
    const out: string[] = [];
    for (let p = from; p <= to; p++) out.push(joinHostPort(defaultIp, p));
    return out;
  }
  if (/^\d+$/.test(text)) return [joinHostPort(defaultIp, checkPort(Number(text), raw))];
  const hp = splitHostPort(text);
  if (hp === null || hp.host === '') throw new Error(`stream_proxy: invalid address ${JSON.stringify(raw)}`);
  return [joinHostPort(hp.host, checkPort(hp.port, raw))];
}

function ppVersion(v: boolean | string | undefined): ProxyProtocolVersion | undefined {
  if (v === undefined || v === false) return undefined;
  if (v === true || v === 'v1') return 'v1';
  if (v === 'v2') return 'v2';
  throw new Error(`stream_proxy: proxy_protocol_to_upstream must be true, "v1" or "v2", got ${JSON.stringify(v)}`);
}

export function parseStreamProxyConf(
  conf: { tcp?: readonly Entry[]; udp?: readonly (number | string)[] } | undefined | null,
  opts: ParseStreamOptions = {},
): StreamProxyConf {
  const defaultIp = opts.defaultIp ?? '0.0.0.0';
  const globalPp = opts.proxyProtocol?.enable_tcp_pp === true;
  const globalPpUp = ppVersion(opts.proxyProtocol?.enable_tcp_pp_to_upstream);
  const tcp: TcpListenSpec[] = [];
  const seen = new Set<string>();
  for (const e of conf?.tcp ?? []) {
    const obj = typeof e === 'object' && e !== null ? e : null;
    const addrs = expandAddr(obj ? obj.addr : (e as number | string), defaultIp);
    const proxyProtocol = obj?.proxy_protocol ?? globalPp;
    const toUpstream = ppVersion(obj?.proxy_protocol_to_upstream) ?? globalPpUp;
    for (const addr of addrs) {
      if (seen.has(addr)) throw new Error(`stream_proxy: duplicate tcp address ${addr}`);
      seen.add(addr);
      const spec: TcpListenSpec = { addr, tls: obj?.tls === true };
      tcp.push({
        ...spec,
        ...(proxyProtocol ? { proxyProtocol: true } : {}),
        ...(toUpstream ? { proxyProtocolToUpstream: toUpstream } : {}),
      });
    }
  }
  const udp: UdpListenSpec[] = [];
  const seenUdp = new Set<string>();
  for (const e of conf?.udp ?? []) {
    for (const addr of expandAddr(e, defaultIp)) {
      if (seenUdp.has(addr)) throw new Error(`stream_proxy: duplicate udp address ${addr}`);
      seenUdp.add(addr);
      udp.push({ addr });
    }
  }
  return { tcp, udp };
}
