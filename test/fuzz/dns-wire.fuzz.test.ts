// Fuzz target: the DNS wire parser of service discovery (src/health/dns-wire.ts).
// Inputs: responses written by an encoder in this file (random A/AAAA/SRV/CNAME/TXT records in all three
// sections, random name compression), responses encoded by the npm `dns-packet` library (a devDependency;
// DNS_PACKET_DIR may name another folder holding node_modules/dns-packet; the comparison fails without it),
// mutations of both, random bytes, hand-made pointer loops; and real answers from dnsmasq,
// compared with what `dig` reads from the same server.
// Properties: parseAnswer never throws anything but a `dns:` Error; it extracts exactly the records the
// encoder wrote; where dns-packet decodes a mutated message, both agree on the addresses and SRV targets;
// encodeQuery output decodes as the question asked; DnsClient and dig see the same answers.
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DnsClient, encodeQuery, parseAnswer, type DnsAnswer } from '../../src/health/dns-wire.ts';
import { freeTcpUdpPort } from '../helpers/ports.ts';
import { startPeer, waitFor, type Peer } from '../helpers/proc.ts';
import { mutatedBytes, params, runs } from './runs.ts';

type Section = 'answer' | 'authority' | 'additional';
type Rec =
  | { type: 1; name: string; ttl: number; section: Section; address: string }
  | { type: 28; name: string; ttl: number; section: Section; address: string }
  | { type: 33; name: string; ttl: number; section: Section; priority: number; weight: number; port: number; target: string }
  | { type: 5; name: string; ttl: number; section: Section; target: string }
  | { type: 16; name: string; ttl: number; section: Section; text: string };

/** Message encoder written from RFC 1035; `compress` enables name compression pointers. */
function encodeMessage(id: number, flags: number, qname: string, recs: readonly Rec[], compress: boolean): Buffer {
  const out: number[] = [];
  const table = new Map<string, number>();
  const u16 = (v: number) => out.push(v >> 8, v & 0xff);
  const u32 = (v: number) => out.push(v >>> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
  const name = (n: string) => {
    const labels = n === '' ? [] : n.split('.');
    for (let i = 0; i < labels.length; i++) {
      const suffix = labels.slice(i).join('.').toLowerCase();
      const at = table.get(suffix);
      if (compress && at !== undefined) return u16(0xc000 | at);
      if (out.length < 0x3fff) table.set(suffix, out.length);
      const b = Buffer.from(labels[i]!, 'latin1');
      out.push(b.length, ...b);
    }
    out.push(0);
  };
  const order: Section[] = ['answer', 'authority', 'additional'];
  const sorted = order.flatMap((s) => recs.filter((r) => r.section === s));
  u16(id);
  u16(flags);
  u16(1);
  for (const s of order) u16(recs.filter((r) => r.section === s).length);
  name(qname);
  u16(33);
  u16(1);
  for (const r of sorted) {
    name(r.name);
    u16(r.type);
    u16(1);
    u32(r.ttl);
    const lenAt = out.length;
    u16(0);
    if (r.type === 1) out.push(...r.address.split('.').map(Number));
    else if (r.type === 28) out.push(...ipv6Bytes(r.address));
    else if (r.type === 33) {
      u16(r.priority);
      u16(r.weight);
      u16(r.port);
      name(r.target);
    } else if (r.type === 5) name(r.target);
    else {
      const t = Buffer.from(r.text, 'latin1');
      out.push(t.length, ...t);
    }
    const len = out.length - lenAt - 2;
    out[lenAt] = len >> 8;
    out[lenAt + 1] = len & 0xff;
  }
  return Buffer.from(out);
}

function ipv6Bytes(addr: string): number[] {
  // Node's BlockList-free route to the 16 bytes: SocketAddress canonicalises, then expand the groups.
  const text = new net.SocketAddress({ address: addr, family: 'ipv6' }).address;
  const m = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  const body = m ? text.slice(0, -m[0].length) + `${((+m[1]! << 8) | +m[2]!).toString(16)}:${((+m[3]! << 8) | +m[4]!).toString(16)}` : text;
  const [h, t] = body.includes('::') ? body.split('::') : [body, ''];
  const hs = h ? h.split(':') : [];
  const ts = t ? t.split(':') : [];
  const groups = [...hs, ...Array<string>(8 - hs.length - ts.length).fill('0'), ...ts];
  return groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]);
}

const canon6 = (a: string) => new net.SocketAddress({ address: a, family: 'ipv6' }).address;

/** What parseAnswer should extract from `recs`. */
function expected(recs: readonly Rec[]): DnsAnswer {
  const lc = (s: string) => s.toLowerCase();
  const addr = (r: Rec) => (r.type === 1 ? r.address : r.type === 28 ? canon6(r.address) : '');
  const pick = (s: Section) => recs.filter((r) => r.section === s && (r.type === 1 || r.type === 28)).map((r) => ({ name: lc(r.name), ttl: r.ttl, address: addr(r) }));
  return {
    rcode: 0,
    addresses: pick('answer'),
    additional: pick('additional'),
    srv: recs.flatMap((r) => (r.section === 'answer' && r.type === 33 ? [{ name: lc(r.name), ttl: r.ttl, priority: r.priority, weight: r.weight, port: r.port, target: lc(r.target) }] : [])),
  };
}

const label = fc.stringMatching(/^[A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?$/);
const dnsName = fc.oneof(fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.')), fc.constantFrom('svc.local', '_http._tcp.svc.local', 'a.svc.local'));
const ttl = fc.integer({ min: 0, max: 2 ** 31 - 1 });
const section = fc.constantFrom<Section>('answer', 'answer', 'authority', 'additional');
const rec: fc.Arbitrary<Rec> = fc.oneof(
  fc.record({ type: fc.constant(1 as const), name: dnsName, ttl, section, address: fc.ipV4() }),
  fc.record({ type: fc.constant(28 as const), name: dnsName, ttl, section, address: fc.ipV6() }),
  fc.record({ type: fc.constant(33 as const), name: dnsName, ttl, section, priority: fc.nat(65535), weight: fc.nat(65535), port: fc.nat(65535), target: dnsName }),
  fc.record({ type: fc.constant(5 as const), name: dnsName, ttl, section, target: dnsName }),
  fc.record({ type: fc.constant(16 as const), name: dnsName, ttl, section, text: fc.string({ maxLength: 30 }) }),
);
const message = fc.record({ id: fc.nat(65535), qname: dnsName, recs: fc.array(rec, { maxLength: 8 }), compress: fc.boolean(), rcode: fc.constantFrom(0, 0, 3) });

/** parseAnswer, asserting the only failure is a `dns:` Error. */
function parse(msg: Buffer, id: number): ReturnType<typeof parseAnswer> | null {
  try {
    return parseAnswer(msg, id);
  } catch (err) {
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^dns: /);
    return null;
  }
}

interface DnsPacket {
  encode(p: object): Buffer;
  decode(b: Buffer): { questions?: { name: string; type: string }[]; answers?: DpRec[]; additionals?: DpRec[] };
}
interface DpRec {
  type: string;
  name: string;
  ttl?: number;
  data?: unknown;
}
function loadDnsPacket(): DnsPacket | null {
  const dirs = [process.env.DNS_PACKET_DIR, process.cwd()].filter((d): d is string => !!d);
  for (const dir of dirs) {
    try {
      return createRequire(path.join(dir, 'noop.js'))('dns-packet') as DnsPacket;
    } catch {
      /* try the next place */
    }
  }
  return null;
}
const dnsPacket = loadDnsPacket();

const N_ROUND = runs(2000);
const N_RANDOM = runs(4000);
const N_DP = runs(1500);

describe('fuzz: DNS wire parser', () => {
  it(`extracts exactly the records the encoder wrote (${N_ROUND} inputs)`, () => {
    fc.assert(
      fc.property(message, ({ id, qname, recs, compress, rcode }) => {
        const msg = encodeMessage(id, 0x8180 | rcode, qname, recs, compress);
        const r = parse(msg, id);
        expect(r).not.toBeNull();
        expect(r!.truncated).toBe(false);
        expect(r!.answer).toEqual({ ...expected(recs), rcode });
        // A response to another query id is refused.
        expect(parse(msg, (id + 1) & 0xffff)).toBeNull();
      }),
      params(N_ROUND),
    );
  });

  it(`mutated responses and random bytes only ever fail with a dns: error (${N_RANDOM} inputs)`, () => {
    const seeds = fc.sample(message, { numRuns: 30, seed: 7 }).map((m) => encodeMessage(0x1234, 0x8180, m.qname, m.recs, m.compress));
    fc.assert(
      fc.property(mutatedBytes(seeds, 700), (buf) => {
        const id = buf.length >= 2 ? buf.readUInt16BE(0) : 0;
        const r = parse(buf, id);
        if (r !== null) for (const a of [...r.answer.addresses, ...r.answer.additional]) expect(net.isIP(a.address)).not.toBe(0);
      }),
      params(N_RANDOM),
    );
  });

  it('pointer loops and self-references are rejected as dns: errors (a loop always hits the jump bound)', () => {
    const head = Buffer.from('1234818000010001000000000', 'hex').subarray(0, 12);
    const selfLoop = Buffer.concat([head, Buffer.from([0xc0, 12]), Buffer.from([0, 1, 0, 1])]);
    const twoHop = Buffer.concat([head, Buffer.from([1, 0x61, 0xc0, 15, 1, 0x62, 0xc0, 12])]);
    const outOfRange = Buffer.concat([head, Buffer.from([0xff, 0xff])]);
    const cutLabel = Buffer.concat([head, Buffer.from([63, 0x61])]);
    for (const msg of [selfLoop, twoHop, outOfRange, cutLabel, head.subarray(0, 11), Buffer.alloc(0)]) {
      expect(parse(msg, 0x1234)).toBeNull();
    }
  });

  it('regression: a label byte >= 0x80 is not read as its ASCII look-alike (0xE1 was read as "a")', () => {
    // Found by the dns-packet differential: labels were decoded as 'ascii', which drops the high bit, so the
    // wire name "\xE1pi.svc" came out as "api.svc".
    const msg = encodeMessage(7, 0x8180, 'q', [{ type: 1, name: '\u00e1pi.svc', ttl: 5, section: 'answer', address: '10.0.0.9' }], false);
    const names = parse(msg, 7)?.answer.addresses.map((a) => a.name);
    expect(names).toEqual(['\u00e1pi.svc']);
    expect(names).not.toContain('api.svc');
  });

  it(`agrees with the dns-packet decoder and encoder (${N_DP} inputs)`, () => {
    // dns-packet is a devDependency: its absence fails here instead of skipping the independent check.
    expect(dnsPacket, 'dns-packet not installed').not.toBeNull();
    const dp = dnsPacket!;
    const toDp = (r: Rec) => ({
      type: ({ 1: 'A', 28: 'AAAA', 33: 'SRV', 5: 'CNAME', 16: 'TXT' } as const)[r.type],
      name: r.name,
      ttl: r.ttl,
      class: 'IN',
      // dns-packet 5.6 encodes some IPv4-suffixed IPv6 texts wrongly ('::0:0:0:0:0:0.0.0.1' as '::'): hand it
      // node's canonical form.
      data: r.type === 1 ? r.address : r.type === 28 ? canon6(r.address) : r.type === 33 ? { priority: r.priority, weight: r.weight, port: r.port, target: r.target } : r.type === 5 ? r.target : r.text,
    });
    fc.assert(
      fc.property(message, fc.nat(), fc.integer({ min: 0, max: 255 }), ({ id, qname, recs }, at, byte) => {
        // dns-packet as the encoder: our parser must read back what it wrote.
        const enc = dp.encode({
          id,
          type: 'response',
          flags: 0x0180,
          questions: [{ type: 'SRV', name: qname }],
          answers: recs.filter((r) => r.section === 'answer').map(toDp),
          authorities: recs.filter((r) => r.section === 'authority').map(toDp),
          additionals: recs.filter((r) => r.section === 'additional').map(toDp),
        });
        expect(parse(enc, id)?.answer).toEqual(expected(recs));
        // dns-packet as the decoder of a mutated message: where both succeed they must agree.
        const mutated = Buffer.from(enc);
        if (mutated.length > 12) mutated[12 + (at % (mutated.length - 12))] = byte;
        let theirs: ReturnType<DnsPacket['decode']> | null = null;
        try {
          theirs = dp.decode(mutated);
        } catch {
          theirs = null;
        }
        const ours = parse(mutated, id);
        if (theirs === null || ours === null) return;
        // dns-packet is lenient (e.g. it reads an A record's 4 bytes whatever RDLENGTH says): compare only
        // messages it re-encodes to the same bytes, i.e. ones it read exactly as written.
        let same = false;
        try {
          same = dp.encode(theirs).equals(mutated);
        } catch {
          same = false;
        }
        if (!same) return;
        // Names with bytes >= 0x80 decode differently by design (dns-packet: UTF-8, ours: one character per byte).
        const ascii = (v: unknown) => !/[^\x20-\x7e]/.test(JSON.stringify(v));
        if (!ascii(theirs) || !ascii(ours)) return;
        const addrs = (list: DpRec[] | undefined) =>
          (list ?? []).filter((r) => (r.type === 'A' && net.isIPv4(String(r.data))) || (r.type === 'AAAA' && net.isIPv6(String(r.data)))).map((r) => `${r.name.toLowerCase()} ${r.type === 'AAAA' ? canon6(String(r.data)) : String(r.data)}`);
        expect(ours.answer.addresses.map((a) => `${a.name} ${a.address}`)).toEqual(addrs(theirs.answers));
        expect(ours.answer.additional.map((a) => `${a.name} ${a.address}`)).toEqual(addrs(theirs.additionals));
      }),
      params(N_DP),
    );
  });

  it('encodeQuery decodes (dns-packet) as the question asked, with EDNS0', () => {
    expect(dnsPacket, 'dns-packet not installed').not.toBeNull();
    fc.assert(
      fc.property(dnsName, fc.constantFrom(['A', 1], ['AAAA', 28], ['SRV', 33]), fc.nat(65535), (name, [type, code], id) => {
        const d = dnsPacket!.decode(encodeQuery(id, name, code as number)) as ReturnType<DnsPacket['decode']> & { id: number };
        expect(d.id).toBe(id);
        expect(d.questions).toEqual([expect.objectContaining({ name, type })]);
        expect(d.additionals?.[0]?.type).toBe('OPT');
      }),
      params(runs(300)),
    );
  });
});

/** `dig` output lines (+noall +answer/+additional) as "name type data" strings, lower-cased, dot-less. */
function digLines(port: number, name: string, type: string, sectionFlag: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile('dig', ['@127.0.0.1', '-p', String(port), name, type, '+noall', sectionFlag, '+tries=2', '+time=2'], { timeout: 10_000 }, (err, stdout) => {
      if (err) return reject(err);
      resolve(
        stdout
          .split('\n')
          .filter((l) => l.trim() !== '' && !l.startsWith(';'))
          .map((l) => {
            const [n, , , t, ...data] = l.trim().split(/\s+/);
            const d = t === 'AAAA' ? canon6(data[0]!) : data.join(' ').replace(/\.$/, '');
            return `${n!.replace(/\.$/, '').toLowerCase()} ${t} ${d.toLowerCase()}`;
          })
          .filter((l) => /^\S+ (A|AAAA|SRV) /.test(l))
          .sort(),
      );
    });
  });
}

describe('DNS wire parser against dig on real dnsmasq answers', () => {
  let dns: Peer | null = null;
  let port = 0;
  const hosts = fc.sample(fc.record({ name: label.map((l) => `${l.toLowerCase()}.fuzz.test`), v4: fc.array(fc.ipV4(), { minLength: 1, maxLength: 3 }), v6: fc.array(fc.ipV6(), { maxLength: 2 }) }), { numRuns: 6 });
  const uniqueHosts = [...new Map(hosts.map((h) => [h.name, h])).values()];
  // 150 SRV records make the UDP answer exceed 4096 bytes: truncated, so the client retries over TCP.
  const srvCount = [3, 150];

  beforeAll(async () => {
    port = await freeTcpUdpPort();
    const args = ['--no-daemon', '--port', String(port), '--listen-address', '127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', '--user=root', '--pid-file=', '--local-ttl=30'];
    for (const h of uniqueHosts) args.push(`--host-record=${[h.name, ...h.v4, ...h.v6].join(',')}`);
    srvCount.forEach((n, k) => {
      for (let i = 0; i < n; i++) {
        const target = uniqueHosts[i % uniqueHosts.length]!.name;
        args.push(`--srv-host=_s${k}._tcp.fuzz.test,${target},${1000 + i},${i % 7},${(i * 13) % 100}`);
      }
    });
    dns = startPeer('dnsmasq', args);
    await waitFor(async () => (await digLines(port, uniqueHosts[0]!.name, 'A', '+answer')).length > 0, 10_000, 100);
  }, 20_000);

  afterAll(async () => {
    await dns?.stop();
  });

  it(`A, AAAA and SRV answers (UDP and truncated -> TCP) read the same as dig (${uniqueHosts.length} hosts)`, async () => {
    const client = new DnsClient({ servers: [`127.0.0.1:${port}`], timeoutMs: 3000 });
    const fmt = (list: { name: string; address: string }[], t: (a: string) => string) => list.map((a) => `${a.name} ${t(a.address)} ${a.address}`);
    for (const h of uniqueHosts) {
      for (const type of ['A', 'AAAA'] as const) {
        const ours = (await client.query(h.name, type)).addresses.filter((a) => (type === 'A' ? net.isIPv4(a.address) : net.isIPv6(a.address)));
        const theirs = await digLines(port, h.name, type, '+answer');
        expect(fmt(ours, () => type).map((l) => l.replace(/ (A|AAAA) /, ` ${type} `)).sort()).toEqual(theirs);
      }
    }
    for (let k = 0; k < srvCount.length; k++) {
      const name = `_s${k}._tcp.fuzz.test`;
      const ours = await client.query(name, 'SRV');
      expect(ours.srv.length).toBe(srvCount[k]);
      const srv = ours.srv.map((s) => `${s.name} SRV ${s.priority} ${s.weight} ${s.port} ${s.target}`).sort();
      expect(srv).toEqual(await digLines(port, name, 'SRV', '+answer'));
      const extra = ours.additional.map((a) => `${a.name} ${net.isIPv4(a.address) ? 'A' : 'AAAA'} ${a.address}`).sort();
      expect(extra).toEqual(await digLines(port, name, 'SRV', '+additional'));
    }
  });
});
