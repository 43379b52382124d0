// Fuzz target: the TLS ClientHello peek (src/tls/client-hello.ts) used for SNI passthrough routing and certificate choice.
// Inputs: real ClientHellos captured from `openssl s_client` (TLS 1.2, 1.3, ALPN, no SNI) and node:tls, fed
// split at every byte boundary and re-fragmented into small TLS records; mutations of them; random bytes;
// hand-built hellos carrying random host names.
// Properties: never throws; `need` asks for more bytes than given (the peek loop relies on it); every proper
// prefix of a real hello is `need`; the complete hello yields the SNI the client sent.
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_HELLO_MAX, parseClientHello, sniFromHandshake, type HelloResult } from '../../src/tls/client-hello.ts';
import { nodeHello, opensslHello } from './captures.ts';
import { mutatedBytes, params, runs } from './runs.ts';

function parse(buf: Buffer): HelloResult {
  const r = parseClientHello(buf);
  if (r.kind === 'need') {
    expect(r.bytes, buf.toString('hex').slice(0, 200)).toBeGreaterThan(buf.length);
    expect(r.bytes).toBeLessThanOrEqual(CLIENT_HELLO_MAX);
  }
  if (r.kind === 'tls' && r.sni !== undefined) expect(r.sni).toMatch(/^[a-z0-9._-]{1,253}$/);
  return r;
}

/** Re-splits the handshake bytes of `hello` into TLS records of at most `size` bytes each. */
function refragment(hello: Buffer, size: number): Buffer {
  const hs: Buffer[] = [];
  for (let off = 0; off + 5 <= hello.length; ) {
    const len = hello.readUInt16BE(off + 3);
    hs.push(hello.subarray(off + 5, off + 5 + len));
    off += 5 + len;
  }
  const data = Buffer.concat(hs);
  const out: Buffer[] = [];
  for (let off = 0; off < data.length; off += size) {
    const part = data.subarray(off, off + size);
    out.push(Buffer.from([0x16, hello[1]!, hello[2]!, part.length >> 8, part.length & 0xff]), part);
  }
  return Buffer.concat(out);
}

/** A minimal ClientHello written from RFC 8446 with the given server_name list entries. */
function handBuilt(names: { type: number; name: Buffer }[], extraBefore: Buffer = Buffer.alloc(0)): Buffer {
  const list = Buffer.concat(names.map(({ type, name }) => Buffer.concat([Buffer.from([type, name.length >> 8, name.length & 0xff]), name])));
  const sni = Buffer.concat([Buffer.from([0, 0, (list.length + 2) >> 8, (list.length + 2) & 0xff, list.length >> 8, list.length & 0xff]), list]);
  const exts = Buffer.concat([extraBefore, sni]);
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 7),
    Buffer.from([0]),
    Buffer.from([0, 2, 0x13, 0x01]),
    Buffer.from([1, 0]),
    Buffer.from([exts.length >> 8, exts.length & 0xff]),
    exts,
  ]);
  const hs = Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, 3, 1, hs.length >> 8, hs.length & 0xff]), hs]);
}

interface Capture {
  readonly what: string;
  readonly hello: Buffer;
  readonly sni: string | undefined;
}
const captures: Capture[] = [];

beforeAll(async () => {
  const node: [string, string | undefined, object][] = [
    ['node:tls default', 'a.test.local', {}],
    ['node:tls TLS 1.2 only', 'Mixed.Case.Example', { maxVersion: 'TLSv1.2' }],
    ['node:tls ALPN', 'h2.example.com', { ALPNProtocols: ['h2', 'http/1.1'] }],
    ['node:tls no SNI', undefined, {}],
    ['node:tls long name', `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.example`, {}],
  ];
  for (const [what, sni, opts] of node) captures.push({ what, hello: await nodeHello(sni, opts), sni: sni?.toLowerCase() });
  const openssl: [string, string[], string | undefined][] = [
    ['openssl TLS 1.3', ['-servername', 'tls13.example.org', '-tls1_3'], 'tls13.example.org'],
    ['openssl TLS 1.2', ['-servername', 'tls12.example.org', '-tls1_2'], 'tls12.example.org'],
    ['openssl ALPN + all ciphers', ['-servername', 'x-1.svc.local', '-alpn', 'h2,http/1.1', '-cipher', 'ALL', '-tls1_2'], 'x-1.svc.local'],
    ['openssl no SNI', ['-noservername'], undefined],
  ];
  for (const [what, args, sni] of openssl) captures.push({ what, hello: await opensslHello(args), sni });
}, 30_000);

const N_RANDOM = runs(4000);
const N_HAND = runs(1000);

describe('fuzz: TLS ClientHello peek', () => {
  it('real ClientHellos: every prefix needs more, the whole gives the SNI, in any record fragmentation', () => {
    expect(captures.length).toBe(9);
    for (const { what, hello, sni } of captures) {
      for (const size of [0, 3, 7, 100]) {
        const buf = size === 0 ? hello : refragment(hello, size);
        for (let i = 0; i < buf.length; i++) {
          const r = parseClientHello(buf.subarray(0, i));
          if (r.kind !== 'need' || r.bytes <= i) expect.fail(`${what}, records of ${size}: prefix ${i} gave ${JSON.stringify(r)}`);
        }
        expect(parse(buf), what).toEqual({ kind: 'tls', sni });
        expect(parse(Buffer.concat([buf, Buffer.from('trailing application data')])), what).toEqual({ kind: 'tls', sni });
      }
    }
  });

  it(`mutated real ClientHellos and random bytes never throw (${N_RANDOM} inputs)`, () => {
    const seeds = captures.map((c) => c.hello);
    fc.assert(
      fc.property(mutatedBytes(seeds, 600), fc.uint8Array({ maxLength: 600 }), (buf, raw) => {
        parse(buf);
        parse(Buffer.concat([Buffer.from([0x16, 3, 1]), Buffer.from(raw)]));
        // The handshake-level parser alone, on the unwrapped bytes.
        sniFromHandshake(buf.subarray(5));
        sniFromHandshake(Buffer.from(raw));
      }),
      params(N_RANDOM),
    );
  });

  it(`hand-built ClientHellos yield the first host_name entry (${N_HAND} inputs)`, () => {
    const name = fc.oneof(fc.domain(), fc.string({ maxLength: 20 }), fc.constantFrom('', 'UPPER.example', 'under_score.x', 'a'.repeat(254)));
    fc.assert(
      fc.property(
        fc.array(fc.record({ type: fc.constantFrom(0, 0, 1, 255), name }), { minLength: 1, maxLength: 3 }),
        fc.array(fc.tuple(fc.integer({ min: 1, max: 0xffff }), fc.uint8Array({ maxLength: 20 })), { maxLength: 3 }),
        (entries, others) => {
          const before = Buffer.concat(others.map(([t, v]) => Buffer.concat([Buffer.from([t >> 8, t & 0xff, v.length >> 8, v.length & 0xff]), Buffer.from(v)])));
          const hello = handBuilt(entries.map((e) => ({ type: e.type, name: Buffer.from(e.name, 'utf8') })), before);
          const first = entries.find((e) => e.type === 0);
          const valid = first !== undefined && /^[A-Za-z0-9._-]{1,253}$/.test(first.name);
          expect(parse(hello)).toEqual({ kind: 'tls', sni: valid ? first.name.toLowerCase() : undefined });
        },
      ),
      params(N_HAND),
    );
  });
});
