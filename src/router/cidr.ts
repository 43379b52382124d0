// IPv4/IPv6 address and CIDR matching for route `remote_addrs` and the `ipmatch` expression operator.
// node:net BlockList is correct but costs ~100 ns per check (native call plus an isIP() to pick the family);
// this matcher parses the request address in JS without allocating and compares masked 32-bit words.
// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack listener reports) also matches IPv4 rules.

const V6_WORDS = 4;

/** Parses a dotted quad in s[from, to); returns the address as an unsigned 32-bit number, or -1. */
function parseV4Range(s: string, from: number, to: number): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let parts = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1; // leading zero, rejected like inet_pton
      octet = octet * 10 + (c - 48);
      if (octet > 255) return -1;
      digits++;
    } else if (c === 46) {
      if (digits === 0 || parts === 3) return -1;
      value = value * 256 + octet;
      parts++;
      octet = 0;
      digits = 0;
    } else {
      return -1;
    }
  }
  if (digits === 0 || parts !== 3) return -1;
  return value * 256 + octet;
}

/** hot path: IPv4 text to an unsigned 32-bit number, or -1 when `s` is not a dotted quad. */
export function parseIPv4(s: string): number {
  return parseV4Range(s, 0, s.length);
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * hot path: IPv6 text (optionally with an embedded IPv4 tail and a `%zone` suffix, which is ignored) into
 * `out` as four unsigned 32-bit words. `groups` is an 8-slot scratch buffer. Returns false when invalid.
 */
export function parseIPv6(s: string, out: Uint32Array, groups: Uint16Array): boolean {
  let len = s.length;
  const zone = s.indexOf('%');
  if (zone >= 0) len = zone;
  if (len < 2) return false;
  let count = 0;
  let gap = -1;
  let i = 0;
  if (s.charCodeAt(0) === 58) {
    if (s.charCodeAt(1) !== 58) return false;
    gap = 0;
    i = 2;
  }
  while (i < len) {
    const start = i;
    let value = 0;
    let digits = 0;
    while (i < len) {
      const h = hexValue(s.charCodeAt(i));
      if (h < 0) break;
      value = value * 16 + h;
      digits++;
      i++;
    }
    if (i < len && s.charCodeAt(i) === 46) {
      if (count > 6) return false;
      const v4 = parseV4Range(s, start, len);
      if (v4 < 0) return false;
      groups[count++] = v4 >>> 16;
      groups[count++] = v4 & 0xffff;
      i = len;
      break;
    }
    if (digits === 0 || digits > 4 || count === 8) return false;
    groups[count++] = value;
    if (i === len) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (i < len && s.charCodeAt(i) === 58) {
      if (gap >= 0) return false;
      gap = count;
      i++;
    } else if (i === len) {
      return false;
    }
  }
  if (gap >= 0) {
    if (count === 8) return false;
    const tail = count - gap;
    for (let k = 0; k < tail; k++) groups[7 - k] = groups[count - 1 - k];
    for (let k = gap; k < 8 - tail; k++) groups[k] = 0;
  } else if (count !== 8) {
    return false;
  }
  for (let w = 0; w < V6_WORDS; w++) out[w] = ((groups[2 * w] << 16) | groups[2 * w + 1]) >>> 0;
  return true;
}

function maskOf(bits: number): number {
  if (bits <= 0) return 0;
  if (bits >= 32) return 0xffffffff;
  return (0xffffffff << (32 - bits)) >>> 0;
}

/** A compiled list of IPs and CIDRs. Build with `IpMatcher.compile`; `match` never throws. */
export class IpMatcher {
  /** IPv4 rules as [network, mask] pairs. */
  private readonly v4: number[] = [];
  /** IPv6 rules as 8 numbers each: network words 0-3 then mask words 0-3. */
  private readonly v6: number[] = [];
  private readonly words = new Uint32Array(V6_WORDS);
  private readonly groups = new Uint16Array(8);

  /** Throws `Error('invalid ip address: <entry>')` on the first entry that is not an IP or CIDR. */
  static compile(entries: readonly string[]): IpMatcher {
    const m = new IpMatcher();
    for (const entry of entries) m.add(entry);
    return m;
  }

  /** The validation message for `entry`, or null when it is a valid IP or CIDR. */
  static check(entry: unknown): string | null {
    try {
      new IpMatcher().add(entry);
      return null;
    } catch (err) {
      return (err as Error).message;
    }
  }

  private add(entry: unknown): void {
    const bad = (): Error => new Error(`invalid ip address: ${String(entry)}`);
    if (typeof entry !== 'string' || entry.length === 0) throw bad();
    const slash = entry.indexOf('/');
    const addr = slash < 0 ? entry : entry.slice(0, slash);
    let bits = -1;
    if (slash >= 0) {
      const text = entry.slice(slash + 1);
      if (!/^\d{1,3}$/.test(text)) throw bad();
      bits = Number(text);
    }
    const v4 = parseIPv4(addr);
    if (v4 >= 0) {
      if (bits > 32) throw bad();
      const mask = maskOf(bits < 0 ? 32 : bits);
      this.v4.push((v4 & mask) >>> 0, mask);
      return;
    }
    if (addr.includes('%') || !parseIPv6(addr, this.words, this.groups)) throw bad();
    if (bits > 128) throw bad();
    const total = bits < 0 ? 128 : bits;
    const masks = [0, 0, 0, 0];
    for (let w = 0; w < V6_WORDS; w++) masks[w] = maskOf(total - 32 * w);
    for (let w = 0; w < V6_WORDS; w++) this.v6.push((this.words[w] & masks[w]) >>> 0);
    this.v6.push(...masks);
  }

  /** hot path: whether `ip` (IPv4 or IPv6 text) is inside any rule; false for anything unparsable. */
  match(ip: string): boolean {
    if (ip.indexOf(':') < 0) return this.matchV4(parseIPv4(ip));
    const w = this.words;
    if (!parseIPv6(ip, w, this.groups)) return false;
    const v6 = this.v6;
    for (let i = 0; i < v6.length; i += 8) {
      if (
        ((w[0] & v6[i + 4]) >>> 0) === v6[i] &&
        ((w[1] & v6[i + 5]) >>> 0) === v6[i + 1] &&
        ((w[2] & v6[i + 6]) >>> 0) === v6[i + 2] &&
        ((w[3] & v6[i + 7]) >>> 0) === v6[i + 3]
      ) {
        return true;
      }
    }
    if (w[0] === 0 && w[1] === 0 && w[2] === 0xffff) return this.matchV4(w[3]);
    return false;
  }

  private matchV4(addr: number): boolean {
    if (addr < 0) return false;
    const v4 = this.v4;
    for (let i = 0; i < v4.length; i += 2) {
      if (((addr & v4[i + 1]) >>> 0) === v4[i]) return true;
    }
    return false;
  }
}
