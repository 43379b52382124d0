// PROXY protocol (HAProxy spec) v1 (text) and v2 (binary): parsing a header sent by a load balancer in front
// of the gateway, and building one for the upstream.
import { isIPv4, isIPv6, SocketAddress } from 'node:net';
import type { ProxyProtocolVersion } from './conf.ts';

const V2_SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ');
/** v1 headers are at most 107 bytes; v2 address blocks are bounded here (TLVs included). */
const V1_MAX = 107;
const V2_MAX = 16 + 1024;

export interface PPAddress {
  readonly addr: string;
  readonly port: number;
}

export type PPResult =
  | { readonly kind: 'need'; readonly bytes: number }
  | { readonly kind: 'error'; readonly reason: string }
  /** `length` bytes make the header; source/dest are absent for LOCAL / UNKNOWN. */
  | { readonly kind: 'ok'; readonly length: number; readonly source?: PPAddress; readonly dest?: PPAddress };

function startsWith(buf: Buffer, sig: Buffer): boolean | undefined {
  const n = Math.min(buf.length, sig.length);
  for (let i = 0; i < n; i++) if (buf[i] !== sig[i]) return false;
  return buf.length >= sig.length ? true : undefined;
}

export function parseProxyHeader(buf: Buffer): PPResult {
  if (buf.length === 0) return { kind: 'need', bytes: 1 };
  const v2 = startsWith(buf, V2_SIG);
  if (v2 === true) return parseV2(buf);
  const v1 = startsWith(buf, V1_PREFIX);
  if (v1 === true) return parseV1(buf);
  if (v1 === undefined || v2 === undefined) return { kind: 'need', bytes: Math.min(buf.length + 1, V2_SIG.length) };
  return { kind: 'error', reason: 'missing PROXY protocol header' };
}

function parsePort(s: string | undefined): number {
  if (s === undefined || !/^\d{1,5}$/.test(s)) return -1;
  const n = Number(s);
  return n <= 65535 ? n : -1;
}

function parseV1(buf: Buffer): PPResult {
  const lf = buf.indexOf(0x0a);
  if (lf < 0) return buf.length >= V1_MAX ? { kind: 'error', reason: 'PROXY v1 header too long' } : { kind: 'need', bytes: buf.length + 1 };
  if (lf + 1 > V1_MAX || buf[lf - 1] !== 0x0d) return { kind: 'error', reason: 'malformed PROXY v1 header' };
  const parts = buf.toString('latin1', 0, lf - 1).split(' ');
  if (parts[1] === 'UNKNOWN') return { kind: 'ok', length: lf + 1 };
  if (parts.length !== 6 || (parts[1] !== 'TCP4' && parts[1] !== 'TCP6')) return { kind: 'error', reason: 'malformed PROXY v1 header' };
  const check = parts[1] === 'TCP4' ? isIPv4 : isIPv6;
  const sport = parsePort(parts[4]);
  const dport = parsePort(parts[5]);
  if (!check(parts[2]!) || !check(parts[3]!) || sport < 0 || dport < 0) return { kind: 'error', reason: 'malformed PROXY v1 addresses' };
  const addr = parts[1] === 'TCP4' ? (a: string) => a : canonicalV6;
  return { kind: 'ok', length: lf + 1, source: { addr: addr(parts[2]!), port: sport }, dest: { addr: addr(parts[3]!), port: dport } };
}

/**
 * The canonical (RFC 5952, as nginx's realip and node:net print it) text of a valid IPv6 address, so one
 * client has one remote_addr whichever header version or spelling announced it (limit keys, logs, ACLs).
 */
function canonicalV6(addr: string): string {
  return new SocketAddress({ address: addr, family: 'ipv6' }).address;
}

function ipv6At(buf: Buffer, off: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(off + i * 2).toString(16));
  return canonicalV6(groups.join(':'));
}

function parseV2(buf: Buffer): PPResult {
  if (buf.length < 16) return { kind: 'need', bytes: 16 };
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return { kind: 'error', reason: 'unsupported PROXY v2 version' };
  const len = buf.readUInt16BE(14);
  const total = 16 + len;
  if (total > V2_MAX) return { kind: 'error', reason: 'PROXY v2 header too long' };
  if (buf.length < total) return { kind: 'need', bytes: total };
  const cmd = verCmd & 0x0f;
  if (cmd === 0) return { kind: 'ok', length: total };
  if (cmd !== 1) return { kind: 'error', reason: 'unsupported PROXY v2 command' };
  const family = buf[13]! >> 4;
  if (family === 1 && len >= 12) {
    const ip = (o: number) => `${buf[o]}.${buf[o + 1]}.${buf[o + 2]}.${buf[o + 3]}`;
    return {
      kind: 'ok',
      length: total,
      source: { addr: ip(16), port: buf.readUInt16BE(24) },
      dest: { addr: ip(20), port: buf.readUInt16BE(26) },
    };
  }
  if (family === 2 && len >= 36) {
    return {
      kind: 'ok',
      length: total,
      source: { addr: ipv6At(buf, 16), port: buf.readUInt16BE(48) },
      dest: { addr: ipv6At(buf, 32), port: buf.readUInt16BE(50) },
    };
  }
  return { kind: 'ok', length: total };
}

function ipv4Bytes(addr: string): number[] {
  return addr.split('.').map(Number);
}

function ipv6Bytes(addr: string): number[] {
  const [head, tail] = addr.includes('::') ? addr.split('::') : [addr, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const expand = (groups: string[]): number[] => {
    const out: number[] = [];
    for (const g of groups) {
      if (g.includes('.')) out.push(...ipv4Bytes(g));
      else {
        const v = parseInt(g, 16);
        out.push(v >> 8, v & 0xff);
      }
    }
    return out;
  };
  const hb = expand(h);
  const tb = expand(t);
  const zeros = tail === undefined ? 0 : 16 - hb.length - tb.length;
  return [...hb, ...new Array<number>(zeros).fill(0), ...tb];
}

/**
 * The header announcing `source` -> `dest` to an upstream. Mixed or unknown families give
 * `PROXY UNKNOWN` (v1) or a LOCAL command (v2).
 */
export function buildProxyHeader(version: ProxyProtocolVersion, source: PPAddress, dest: PPAddress): Buffer {
  const fam = isIPv4(source.addr) && isIPv4(dest.addr) ? 4 : isIPv6(source.addr) && isIPv6(dest.addr) ? 6 : 0;
  if (version === 'v1') {
    if (fam === 0) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
    return Buffer.from(`PROXY TCP${fam} ${source.addr} ${dest.addr} ${source.port} ${dest.port}\r\n`, 'latin1');
  }
  const addrLen = fam === 4 ? 12 : fam === 6 ? 36 : 0;
  const out = Buffer.alloc(16 + addrLen);
  V2_SIG.copy(out, 0);
  out[12] = fam === 0 ? 0x20 : 0x21;
  out[13] = fam === 4 ? 0x11 : fam === 6 ? 0x21 : 0x00;
  out.writeUInt16BE(addrLen, 14);
  if (fam === 4) {
    Buffer.from(ipv4Bytes(source.addr)).copy(out, 16);
    Buffer.from(ipv4Bytes(dest.addr)).copy(out, 20);
    out.writeUInt16BE(source.port, 24);
    out.writeUInt16BE(dest.port, 26);
  } else if (fam === 6) {
    Buffer.from(ipv6Bytes(source.addr)).copy(out, 16);
    Buffer.from(ipv6Bytes(dest.addr)).copy(out, 32);
    out.writeUInt16BE(source.port, 48);
    out.writeUInt16BE(dest.port, 50);
  }
  return out;
}
