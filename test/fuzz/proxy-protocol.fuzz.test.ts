// Fuzz target: the PROXY protocol v1/v2 header parser (protocols/stream/proxy-protocol.ts).
// Properties: no byte string makes parseProxyHeader throw; `need` always asks for more bytes than given and
// `ok` never claims more than given (the listener's read loop relies on both); every prefix of a valid header
// is `need`, never `error`, and the full header parses to the addresses it was built from whatever follows;
// buildProxyHeader output parses back (v1 and v2, IPv4 and IPv6). haproxy as an independent encoder is in
// test/stream/proxy-protocol-haproxy.test.ts.
import net from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildProxyHeader, parseProxyHeader, type PPResult } from '../../protocols/stream/proxy-protocol.ts';
import { mutatedBytes, params, runs } from './runs.ts';

const V2_SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

function parse(buf: Buffer): PPResult {
  const r = parseProxyHeader(buf);
  if (r.kind === 'need') expect(r.bytes, buf.toString('hex')).toBeGreaterThan(buf.length);
  else if (r.kind === 'ok') {
    expect(r.length).toBeLessThanOrEqual(buf.length);
    expect(r.length).toBeGreaterThan(0);
    for (const a of [r.source, r.dest]) {
      if (a === undefined) continue;
      expect(net.isIP(a.addr)).not.toBe(0);
      expect(a.addr).toBe(canon(a.addr));
      expect(a.port >= 0 && a.port <= 65535).toBe(true);
    }
  } else expect(r.reason.length).toBeGreaterThan(0);
  return r;
}

function canon(addr: string): string {
  return new net.SocketAddress({ address: addr, family: net.isIPv4(addr) ? 'ipv4' : 'ipv6' }).address;
}

/** A v2 header written here from the spec, with optional TLVs, for any command/family. */
function v2(cmd: number, family: number, body: Buffer): Buffer {
  const head = Buffer.alloc(16);
  V2_SIG.copy(head);
  head[12] = 0x20 | cmd;
  head[13] = family;
  head.writeUInt16BE(body.length, 14);
  return Buffer.concat([head, body]);
}

const addrPair = fc.oneof(
  fc.record({ src: fc.ipV4(), dst: fc.ipV4(), sp: fc.integer({ min: 0, max: 65535 }), dp: fc.integer({ min: 0, max: 65535 }) }),
  fc.record({ src: fc.ipV6(), dst: fc.ipV6(), sp: fc.integer({ min: 0, max: 65535 }), dp: fc.integer({ min: 0, max: 65535 }) }),
);
const tlvs = fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 40 })), { maxLength: 4 }).map((list) =>
  Buffer.concat(list.map(([t, v]) => Buffer.concat([Buffer.from([t, v.length >> 8, v.length & 0xff]), Buffer.from(v)]))),
);
/** Valid headers with their expected source/dest, built by hand (not by buildProxyHeader). */
const validHeader = fc.oneof(
  addrPair.map(({ src, dst, sp, dp }) => {
    const fam = net.isIPv4(src) ? 'TCP4' : 'TCP6';
    return { buf: Buffer.from(`PROXY ${fam} ${src} ${dst} ${sp} ${dp}\r\n`, 'latin1'), src, dst, sp, dp };
  }),
  fc.tuple(addrPair, tlvs).map(([{ src, dst, sp, dp }, extra]) => {
    const is4 = net.isIPv4(src);
    const addrs = Buffer.alloc(is4 ? 12 : 36);
    const bytes = (a: string) => (is4 ? Buffer.from(a.split('.').map(Number)) : ipv6Bytes(a));
    bytes(src).copy(addrs, 0);
    bytes(dst).copy(addrs, is4 ? 4 : 16);
    addrs.writeUInt16BE(sp, is4 ? 8 : 32);
    addrs.writeUInt16BE(dp, is4 ? 10 : 34);
    return { buf: v2(1, is4 ? 0x11 : 0x21, Buffer.concat([addrs, extra])), src, dst, sp, dp };
  }),
);

/** IPv6 text to 16 bytes, via node's own canonical form (expanded by hand: no code shared with the parser). */
function ipv6Bytes(addr: string): Buffer {
  const full = canon(addr);
  const out = Buffer.alloc(16);
  let text = full;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const o = v4[1]!.split('.').map(Number);
    text = text.slice(0, -v4[1]!.length) + `${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [h, t] = text.includes('::') ? text.split('::') : [text, ''];
  const hs = h ? h.split(':') : [];
  const ts = t ? t.split(':') : [];
  const groups = [...hs, ...Array<string>(8 - hs.length - ts.length).fill('0'), ...ts];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

const SEEDS = [
  Buffer.from('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n'),
  Buffer.from('PROXY TCP6 2001:db8::1 ::1 1 65535\r\nGET /'),
  Buffer.from('PROXY UNKNOWN\r\n'),
  Buffer.from('PROXY TCP6 fe80::1%eth0 ::ffff:10.0.0.1 1 2\r\n'),
  Buffer.from('PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n'),
  v2(0, 0, Buffer.alloc(0)),
  v2(1, 0x11, Buffer.from('7f0000017f000002d4310050', 'hex')),
  v2(1, 0x21, Buffer.alloc(36, 1)),
  v2(1, 0x31, Buffer.alloc(216, 0x41)),
  v2(1, 0x11, Buffer.from('7f0000017f000002d431005001000568322c6831', 'hex')),
];

const N_RANDOM = runs(5000);
const N_VALID = runs(1000);

describe('fuzz: PROXY protocol parser', () => {
  it(`arbitrary and mutated bytes never throw; need/ok bounds hold (${N_RANDOM} inputs)`, () => {
    fc.assert(
      fc.property(mutatedBytes(SEEDS, 300), (buf) => {
        parse(buf);
      }),
      params(N_RANDOM),
    );
  });

  it(`valid v1/v2 headers: every prefix needs more, the whole parses to its addresses (${N_VALID} inputs)`, () => {
    fc.assert(
      fc.property(validHeader, fc.uint8Array({ maxLength: 64 }), ({ buf, src, dst, sp, dp }, tail) => {
        for (let i = 0; i < buf.length; i++) {
          const p = parseProxyHeader(buf.subarray(0, i));
          if (p.kind !== 'need' || p.bytes <= i) expect.fail(`prefix ${i} of ${buf.toString('hex')} gave ${JSON.stringify(p)}`);
        }
        const r = parse(Buffer.concat([buf, tail]));
        expect(r.kind).toBe('ok');
        if (r.kind !== 'ok') return;
        expect(r.length).toBe(buf.length);
        expect(canon(r.source!.addr)).toBe(canon(src));
        expect(canon(r.dest!.addr)).toBe(canon(dst));
        expect([r.source!.port, r.dest!.port]).toEqual([sp, dp]);
      }),
      params(N_VALID),
    );
  });

  it(`buildProxyHeader output parses back to the same addresses (${N_VALID} inputs)`, () => {
    fc.assert(
      fc.property(addrPair, fc.constantFrom<'v1' | 'v2'>('v1', 'v2'), ({ src, dst, sp, dp }, version) => {
        const header = buildProxyHeader(version, { addr: src, port: sp }, { addr: dst, port: dp });
        const r = parse(header);
        expect(r.kind).toBe('ok');
        if (r.kind !== 'ok') return;
        expect(r.length).toBe(header.length);
        expect(canon(r.source!.addr)).toBe(canon(src));
        expect(canon(r.dest!.addr)).toBe(canon(dst));
        expect([r.source!.port, r.dest!.port]).toEqual([sp, dp]);
      }),
      params(N_VALID),
    );
  });

  it('regression: IPv6 sources come out in canonical form (v2 gave "0:0:0:0:0:0:0:1" for ::1)', () => {
    // Found by the haproxy test: a v2 AF_INET6 block was printed group by group, so the same client had
    // remote_addr "::1" behind send-proxy and "0:0:0:0:0:0:0:1" behind send-proxy-v2 (distinct limit keys,
    // log lines and string comparisons). v1 texts are canonicalised too ("0:0::1" is "::1").
    const block = Buffer.alloc(36);
    block[15] = 1;
    block[31] = 1;
    block.writeUInt16BE(40000, 32);
    block.writeUInt16BE(443, 34);
    const r2 = parse(v2(1, 0x21, block));
    const r1 = parse(Buffer.from('PROXY TCP6 0:0::1 2001:DB8:0:0:0:0:0:1 40000 443\r\n'));
    for (const r of [r2, r1]) {
      expect(r.kind).toBe('ok');
      if (r.kind === 'ok') expect(r.source).toEqual({ addr: '::1', port: 40000 });
    }
    if (r1.kind === 'ok') expect(r1.dest?.addr).toBe('2001:db8::1');
  });

  it('mixed families build a header without addresses (v1 UNKNOWN, v2 LOCAL)', () => {
    for (const version of ['v1', 'v2'] as const) {
      const r = parse(buildProxyHeader(version, { addr: '10.0.0.1', port: 1 }, { addr: '::1', port: 2 }));
      expect(r.kind).toBe('ok');
      if (r.kind === 'ok') expect(r.source).toBeUndefined();
    }
  });
});
