// Fuzz target: the HTTP/3 input decoders a QUIC client reaches (protocols/http3): the QPACK decoder (encoder
// stream instructions into the dynamic table, field sections with static, dynamic and post-base references,
// Huffman strings), the frame reader of request and control streams, and the SETTINGS parser.
// Inputs: encoder streams and field sections written by an encoder in this file from RFC 9204 (a model of the
// dynamic table beside it; Huffman codes built from the canonical code lengths and checked against an RFC 7541
// example), frame sequences with minimal and non-minimal varints, mutations of all of these, overlong prefix
// integers, random bytes, every input fed in random splits.
// Properties: the decoders throw only their typed errors (QpackError, FieldSectionTooLarge, H3Error), never
// anything else; valid input decodes to exactly what was encoded whatever the split; the dynamic table never
// exceeds the capacity we advertise, and neither does a decoded section exceed its limits; the frame reader
// never buffers more than one bounded frame; blocked sections resume once their entries arrive.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameReader, H3Error, H3_EXCESSIVE_LOAD, parseSettings, type FrameEvent } from '../../protocols/http3/frames.ts';
import { HUFFMAN_LENGTHS } from '../../protocols/http3/huffman-table.ts';
import { FieldSectionTooLarge, QPACK_DECOMPRESSION_FAILED, QPACK_ENCODER_STREAM_ERROR, QpackDecoder, QpackError, type DecoderLimits, type Field } from '../../protocols/http3/qpack.ts';
import { STATIC_TABLE } from '../../protocols/http3/qpack-static.ts';
import { mutatedBytes, params, runs } from './runs.ts';

const LIMITS: DecoderLimits = { maxTableCapacity: 4096, maxBlockedStreams: 4, maxFieldSectionSize: 8192, maxFields: 64 };
const MAX_ENTRIES = Math.floor(LIMITS.maxTableCapacity / 32);

// ---- an encoder written here from RFC 9204 / RFC 7541 ----

/** RFC 7541 5.1 prefixed integer. */
function int(out: number[], first: number, prefix: number, v: number): void {
  const max = (1 << prefix) - 1;
  if (v < max) {
    out.push(first | v);
    return;
  }
  out.push(first | max);
  let rest = v - max;
  while (rest >= 128) {
    out.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
}

/** Canonical Huffman codes from the RFC 7541 code lengths: [code, length] per symbol. */
const CODES: [number, number][] = (() => {
  const syms = HUFFMAN_LENGTHS.map((len, sym) => ({ len, sym })).sort((a, b) => a.len - b.len || a.sym - b.sym);
  const codes: [number, number][] = [];
  let code = 0;
  for (let i = 0; i < syms.length; i++) {
    if (i > 0) code = (code + 1) * 2 ** (syms[i]!.len - syms[i - 1]!.len);
    codes[syms[i]!.sym] = [code, syms[i]!.len];
  }
  return codes;
})();

function huffman(s: string): number[] {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < s.length; i++) {
    const [code, len] = CODES[s.charCodeAt(i)]!;
    for (let b = len - 1; b >= 0; b--) {
      acc = (acc << 1) | (Math.floor(code / 2 ** b) & 1);
      if (++bits === 8) {
        out.push(acc);
        acc = 0;
        bits = 0;
      }
    }
  }
  if (bits > 0) out.push(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) & 0xff);
  return out;
}

/** A string literal whose H flag is bit `prefix` of `first`. */
function str(out: number[], first: number, prefix: number, s: string, huff: boolean): void {
  const bytes = huff ? huffman(s) : [...Buffer.from(s, 'latin1')];
  int(out, first | (huff ? 1 << prefix : 0), prefix, bytes.length);
  out.push(...bytes);
}

/** The dynamic table as RFC 9204 3.2 describes it. */
class Model {
  capacity = 0;
  size = 0;
  entries: Field[] = [];
  dropped = 0;
  get inserts(): number {
    return this.dropped + this.entries.length;
  }
  /** Returns false (and changes nothing) when the entry cannot fit. */
  insert(f: Field): boolean {
    const need = f[0].length + f[1].length + 32;
    if (need > this.capacity) return false;
    while (this.size + need > this.capacity) {
      const [n, v] = this.entries.shift()!;
      this.size -= n.length + v.length + 32;
      this.dropped++;
    }
    this.entries.push(f);
    this.size += need;
    return true;
  }
  setCapacity(c: number): void {
    this.capacity = c;
    while (this.size > c) {
      const [n, v] = this.entries.shift()!;
      this.size -= n.length + v.length + 32;
      this.dropped++;
    }
  }
  get(abs: number): Field | undefined {
    return abs >= this.dropped ? this.entries[abs - this.dropped] : undefined;
  }
}

const token = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz-0123456789'.split('')), minLength: 1, maxLength: 12 });
const value = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary-ascii', maxLength: 20 }), fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a).toString('latin1')));

const encoderOp = fc.oneof(
  fc.record({ op: fc.constant('capacity' as const), cap: fc.oneof(fc.integer({ min: 0, max: LIMITS.maxTableCapacity }), fc.constant(LIMITS.maxTableCapacity)) }),
  fc.record({ op: fc.constant('literal' as const), name: token, value, hn: fc.boolean(), hv: fc.boolean() }),
  fc.record({ op: fc.constant('static' as const), idx: fc.nat(STATIC_TABLE.length - 1), value, hv: fc.boolean() }),
  fc.record({ op: fc.constant('dynName' as const), rel: fc.nat(20), value, hv: fc.boolean() }),
  fc.record({ op: fc.constant('dup' as const), rel: fc.nat(20) }),
);
type EncoderOp = typeof encoderOp extends fc.Arbitrary<infer T> ? T : never;

/** Encoder-stream bytes for the ops the model accepts (the others are skipped, as an encoder would). */
function encodeOps(model: Model, ops: readonly EncoderOp[]): Buffer {
  const out: number[] = [];
  for (const o of ops) {
    if (o.op === 'capacity') {
      int(out, 0x20, 5, o.cap);
      model.setCapacity(o.cap);
    } else if (o.op === 'literal') {
      const at = out.length;
      str(out, 0x40, 5, o.name, o.hn);
      str(out, 0x00, 7, o.value, o.hv);
      if (!model.insert([o.name, o.value])) out.length = at;
    } else if (o.op === 'static') {
      const at = out.length;
      int(out, 0xc0, 6, o.idx);
      str(out, 0x00, 7, o.value, o.hv);
      if (!model.insert([STATIC_TABLE[o.idx]![0], o.value])) out.length = at;
    } else {
      const abs = model.inserts - 1 - o.rel;
      const e = abs >= 0 ? model.get(abs) : undefined;
      if (e === undefined) continue;
      const at = out.length;
      if (o.op === 'dup') {
        int(out, 0x00, 5, o.rel);
        if (!model.insert([e[0], e[1]])) out.length = at;
      } else {
        int(out, 0x80, 6, o.rel);
        str(out, 0x00, 7, o.value, o.hv);
        if (!model.insert([e[0], o.value])) out.length = at;
      }
    }
  }
  return Buffer.from(out);
}

const fieldLine = fc.oneof(
  fc.record({ k: fc.constant('staticIdx' as const), idx: fc.nat(STATIC_TABLE.length - 1) }),
  fc.record({ k: fc.constant('staticName' as const), idx: fc.nat(STATIC_TABLE.length - 1), value, hv: fc.boolean(), n: fc.boolean() }),
  fc.record({ k: fc.constant('literal' as const), name: token, value, hn: fc.boolean(), hv: fc.boolean() }),
  fc.record({ k: fc.constant('dynIdx' as const), pick: fc.nat() }),
  fc.record({ k: fc.constant('dynName' as const), pick: fc.nat(), value, hv: fc.boolean() }),
);
type FieldLine = typeof fieldLine extends fc.Arbitrary<infer T> ? T : never;

/** A field section over the model's current table; returns the bytes and the fields it carries. */
function encodeSection(model: Model, lines: readonly FieldLine[], basePick: number): { bytes: Buffer; fields: Field[]; ric: number } {
  const live = model.entries.length;
  const usesDynamic = live > 0 && lines.some((l) => l.k === 'dynIdx' || l.k === 'dynName');
  const ric = usesDynamic ? model.inserts : 0;
  const base = ric === 0 ? 0 : basePick % (ric + 1);
  const out: number[] = [];
  int(out, 0, 8, ric === 0 ? 0 : (ric % (2 * MAX_ENTRIES)) + 1);
  if (base >= ric) int(out, 0x00, 7, base - ric);
  else int(out, 0x80, 7, ric - base - 1);
  const fields: Field[] = [];
  for (const l of lines) {
    if (l.k === 'staticIdx') {
      int(out, 0xc0, 6, l.idx);
      fields.push([...STATIC_TABLE[l.idx]!] as Field);
    } else if (l.k === 'staticName') {
      int(out, 0x50 | (l.n ? 0x20 : 0), 4, l.idx);
      str(out, 0x00, 7, l.value, l.hv);
      fields.push([STATIC_TABLE[l.idx]![0], l.value]);
    } else if (l.k === 'literal') {
      str(out, 0x20, 3, l.name, l.hn);
      str(out, 0x00, 7, l.value, l.hv);
      fields.push([l.name, l.value]);
    } else if (ric > 0) {
      const abs = model.dropped + (l.pick % live);
      const e = model.get(abs)!;
      if (l.k === 'dynIdx') {
        if (abs < base) int(out, 0x80, 6, base - 1 - abs);
        else int(out, 0x10, 4, abs - base);
        fields.push([e[0], e[1]]);
      } else {
        if (abs < base) int(out, 0x40, 4, base - 1 - abs);
        else int(out, 0x00, 3, abs - base);
        str(out, 0x00, 7, l.value, l.hv);
        fields.push([e[0], l.value]);
      }
    }
  }
  return { bytes: Buffer.from(out), fields, ric };
}

function splits(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

/** The decoder's private table state (the invariants are about it). */
function tableOf(d: QpackDecoder): { capacity: number; size: number; entries: Field[]; blocked: number } {
  return d as unknown as { capacity: number; size: number; entries: Field[]; blocked: number };
}

function checkTable(d: QpackDecoder): void {
  const t = tableOf(d);
  expect(Number.isInteger(t.capacity) && t.capacity >= 0 && t.capacity <= LIMITS.maxTableCapacity, `capacity ${t.capacity}`).toBe(true);
  expect(t.size, 'table size').toBeLessThanOrEqual(t.capacity);
  expect(t.size).toBe(t.entries.reduce((n, [a, b]) => n + a.length + b.length + 32, 0));
  expect(Number.isInteger(d.insertCount)).toBe(true);
  expect(t.blocked).toBeGreaterThanOrEqual(0);
  expect(t.blocked).toBeLessThanOrEqual(LIMITS.maxBlockedStreams);
}

/** Feeds the encoder stream; a failure must be a QpackError with the encoder-stream code. */
function feedEncoder(d: QpackDecoder, parts: readonly Buffer[]): boolean {
  for (const p of parts) {
    try {
      d.onEncoderStream(p);
    } catch (err) {
      if (!(err instanceof QpackError)) throw err;
      expect(err.code).toBe(QPACK_ENCODER_STREAM_ERROR);
      checkTable(d);
      return false;
    }
    checkTable(d);
  }
  return true;
}

/** Decodes a section; a failure must be a QpackError (decompression failed) or FieldSectionTooLarge. */
function decodeChecked(d: QpackDecoder, block: Buffer, stream: number, wasBlocked = false): ReturnType<QpackDecoder['decode']> | null {
  try {
    const r = d.decode(block, stream, wasBlocked);
    if (!r.blocked) {
      expect(r.fields.length).toBeLessThanOrEqual(LIMITS.maxFields);
      let total = 0;
      for (const [n, v] of r.fields) {
        expect(typeof n === 'string' && typeof v === 'string').toBe(true);
        total += n.length + v.length + 32;
      }
      expect(total).toBeLessThanOrEqual(LIMITS.maxFieldSectionSize);
    } else expect(Number.isInteger(r.requiredInsertCount) && r.requiredInsertCount > d.insertCount).toBe(true);
    return r;
  } catch (err) {
    if (err instanceof QpackError) expect(err.code).toBe(QPACK_DECOMPRESSION_FAILED);
    else if (!(err instanceof FieldSectionTooLarge)) throw err;
    return null;
  } finally {
    checkTable(d);
  }
}

/** A valid encoder stream plus a section over it, with the expected fields. */
const validExchange = fc
  .tuple(
    fc.array(encoderOp, { maxLength: 14 }).map((ops) => [{ op: 'capacity' as const, cap: LIMITS.maxTableCapacity }, ...ops]),
    fc.array(fieldLine, { maxLength: 10 }),
    fc.nat(),
    fc.integer({ min: 0, max: 2 ** 20 }),
  )
  .map(([ops, lines, basePick, stream]) => {
    const model = new Model();
    const enc = encodeOps(model, ops);
    return { enc, ...encodeSection(model, lines, basePick), stream: stream * 4 };
  });

const cuts = fc.array(fc.nat(), { maxLength: 8 });

/** Overlong prefix integers (long runs of zero continuation bytes) where the integer starts an instruction. */
const overlong = fc
  .tuple(fc.constantFrom(0x20, 0x3f, 0x5f, 0x7f, 0xff, 0xc0, 0x1f), fc.integer({ min: 1, max: 400 }), fc.constantFrom(0x00, 0x01, 0x7f), fc.uint8Array({ maxLength: 40 }))
  .map(([first, run, last, tail]) => Buffer.concat([Buffer.from([first | 0x1f]), Buffer.alloc(run, 0x80), Buffer.from([last]), Buffer.from(tail)]));

const N_VALID = runs(500);
const N_MUTATED = runs(1000);
const N_FRAMES = runs(800);

describe('fuzz: QPACK decoder', () => {
  it('the test Huffman encoder writes RFC 7541 C.4.1 (www.example.com)', () => {
    expect(Buffer.from(huffman('www.example.com')).toString('hex')).toBe('f1e3c2e5f23a6ba0ab90f4ff');
  });

  it('regression (found by this target): an overlong capacity integer cannot unbound the dynamic table', () => {
    // Set Dynamic Table Capacity 31 + 0 written with 150 zero continuation bytes: the decoder read it as NaN,
    // then every capacity and length check passed and each 100 KB insert stayed in the table.
    const d = new QpackDecoder(LIMITS);
    const cap = Buffer.concat([Buffer.from([0x3f]), Buffer.alloc(150, 0x80), Buffer.from([0x00])]);
    expect(() => d.onEncoderStream(cap)).toThrow(QpackError);
    checkTable(d);
    const out: number[] = [];
    str(out, 0x40, 5, 'n', false);
    str(out, 0x00, 7, 'x'.repeat(100_000), false);
    expect(() => d.onEncoderStream(Buffer.from(out))).toThrow(QpackError);
    expect(tableOf(d).size).toBe(0);
  });

  it(`valid encoder streams and sections decode to what was encoded, in any split (${N_VALID} inputs)`, () => {
    fc.assert(
      fc.property(validExchange, cuts, cuts, ({ enc, bytes, fields, ric, stream }, encCuts, secCuts) => {
        const d = new QpackDecoder(LIMITS);
        // The section may arrive first: it is blocked until the encoder stream brings its entries.
        const early = ric > 0 ? decodeChecked(d, bytes, stream) : null;
        if (ric > 0) expect(early).toEqual({ blocked: true, requiredInsertCount: ric });
        expect(feedEncoder(d, splits(enc, encCuts))).toBe(true);
        expect(d.insertCount).toBeGreaterThanOrEqual(ric);
        const r = decodeChecked(d, Buffer.concat(splits(bytes, secCuts)), stream, ric > 0);
        expect(r).toEqual({ fields, blocked: false });
        // The encoder is told the section was processed (Section Acknowledgment) and what was inserted.
        if (ric > 0 || d.insertCount > 0) expect(d.takeInstructions()).not.toBeNull();
      }),
      params(N_VALID),
    );
  });

  it(`mutated and random encoder streams and sections raise only QPACK errors, the table stays bounded (${N_MUTATED} inputs)`, () => {
    const seeds = fc.sample(validExchange, { numRuns: 40, seed: 9204 });
    const encSeeds = seeds.map((s) => s.enc).filter((b) => b.length > 0);
    const secSeeds = seeds.map((s) => s.bytes);
    const encInput = fc.oneof(mutatedBytes(encSeeds, 600), overlong, overlong.map((o) => Buffer.concat([encSeeds[0]!, o])));
    const secInput = fc.oneof(mutatedBytes(secSeeds, 300), overlong, overlong.map((o) => Buffer.concat([Buffer.from([0x00, 0x00]), o])));
    fc.assert(
      fc.property(encInput, cuts, fc.array(secInput, { minLength: 1, maxLength: 6 }), (enc, encCuts, sections) => {
        const d = new QpackDecoder(LIMITS);
        const blocked: Buffer[] = [];
        sections.forEach((s, i) => {
          const r = decodeChecked(d, s, i * 4);
          if (r?.blocked) blocked.push(s);
        });
        feedEncoder(d, splits(enc, encCuts));
        for (const [i, s] of blocked.entries()) {
          if (tableOf(d).blocked === 0) break;
          const r = decodeChecked(d, s, i * 4, true);
          if (r?.blocked !== true) continue;
          d.cancelStream(i * 4, true);
        }
        d.takeInstructions();
      }),
      params(N_MUTATED),
    );
  });
});

// ---- frames ----

/** A varint of `v` in `len` bytes (1, 2, 4 or 8; non-minimal lengths are legal, RFC 9000 16). */
function varintIn(v: number, len: 1 | 2 | 4 | 8): Buffer {
  const b = Buffer.alloc(len);
  if (len === 8) b.writeBigUInt64BE(BigInt(v));
  else b.writeUIntBE(v, 0, len);
  b[0]! |= [0, 0, 0x40, 0, 0x80, 0, 0, 0, 0xc0][len]!;
  return b;
}

function minimalLen(v: number): 1 | 2 | 4 | 8 {
  return v < 0x40 ? 1 : v < 0x4000 ? 2 : v < 0x40000000 ? 4 : 8;
}

const MAX_FRAME = 256;
const frameGen = fc
  .record({
    type: fc.oneof(fc.constantFrom(0x00, 0x00, 0x01, 0x04, 0x07, 0x02, 0x06, 0x21, 0x1f * 7 + 0x21), fc.integer({ min: 0, max: 2 ** 40 })),
    payload: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: MAX_FRAME + 40 })),
    widen: fc.constantFrom<0 | 1 | 2 | 3>(0, 0, 1, 2, 3),
  })
  .map(({ type, payload, widen }) => {
    const lens = [1, 2, 4, 8] as const;
    const tl = lens[Math.min(3, lens.indexOf(minimalLen(type)) + widen)]!;
    const ll = lens[Math.min(3, lens.indexOf(minimalLen(payload.length)) + widen)]!;
    return { type, payload: Buffer.from(payload), bytes: Buffer.concat([varintIn(type, tl), varintIn(payload.length, ll), payload]) };
  });

type Ev = { frame: number; payload: string } | { data: string };

/** What the reader should report: frames whole, DATA as its payload (merged across pieces). */
function expected(frames: readonly { type: number; payload: Buffer }[]): { events: Ev[]; error: boolean } {
  const events: Ev[] = [];
  for (const f of frames) {
    if (f.type === 0) {
      const last = events[events.length - 1];
      if (last !== undefined && 'data' in last) last.data += f.payload.toString('hex');
      else if (f.payload.length > 0) events.push({ data: f.payload.toString('hex') });
    } else if (f.payload.length > MAX_FRAME) return { events, error: true };
    else events.push({ frame: f.type, payload: f.payload.toString('hex') });
  }
  return { events, error: false };
}

function read(parts: readonly Buffer[]): { events: Ev[]; error: H3Error | null; reader: FrameReader } {
  const reader = new FrameReader(MAX_FRAME);
  const raw: FrameEvent[] = [];
  const events: Ev[] = [];
  let error: H3Error | null = null;
  for (const p of parts) {
    try {
      reader.push(p, raw);
    } catch (err) {
      if (!(err instanceof H3Error)) throw err;
      error = err;
      break;
    } finally {
      // One bounded frame at most is held (plus its head: two 8-byte varints).
      expect((reader as unknown as { buf: Buffer }).buf.length).toBeLessThanOrEqual(MAX_FRAME + 16);
    }
  }
  for (const e of raw) {
    if (e.kind === 'frame') events.push({ frame: e.type, payload: e.payload.toString('hex') });
    else {
      const last = events[events.length - 1];
      if (last !== undefined && 'data' in last) last.data += e.chunk.toString('hex');
      else if (e.chunk.length > 0) events.push({ data: e.chunk.toString('hex') });
    }
  }
  return { events, error, reader };
}

describe('fuzz: HTTP/3 frame reader and SETTINGS', () => {
  it(`frame sequences read back frame by frame in any split; oversized frames are H3_EXCESSIVE_LOAD (${N_FRAMES} inputs)`, () => {
    fc.assert(
      fc.property(fc.array(frameGen, { maxLength: 8 }), cuts, (frames, c) => {
        const all = Buffer.concat(frames.map((f) => f.bytes));
        const want = expected(frames);
        const got = read(splits(all, c));
        if (want.error) {
          expect(got.error?.code).toBe(H3_EXCESSIVE_LOAD);
          expect(got.events.slice(0, want.events.length)).toEqual(want.events);
        } else {
          expect(got.error).toBeNull();
          expect(got.events).toEqual(want.events);
          expect(got.reader.atBoundary).toBe(true);
        }
      }),
      params(N_FRAMES),
    );
  });

  it(`mutated and random stream bytes raise only H3Error and never buffer more than one frame (${N_MUTATED} inputs)`, () => {
    const seeds = fc.sample(fc.array(frameGen, { maxLength: 4 }), { numRuns: 40, seed: 9114 }).map((fs) => Buffer.concat(fs.map((f) => f.bytes)));
    fc.assert(
      fc.property(mutatedBytes(seeds, 700), cuts, (buf, c) => {
        read(splits(buf, c));
      }),
      params(N_MUTATED),
    );
  });

  it(`SETTINGS payloads parse to their pairs or raise H3Error (${N_FRAMES} inputs)`, () => {
    const pair = fc.tuple(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 0, max: 2 ** 40 }));
    const valid = fc.uniqueArray(pair, { selector: ([k]) => k, maxLength: 8 }).map((pairs) => pairs.filter(([k]) => k > 5));
    fc.assert(
      fc.property(valid, mutatedBytes([], 64), (pairs, noise) => {
        const payload = Buffer.concat(pairs.flatMap(([k, v]) => [varintIn(k, minimalLen(k)), varintIn(v, minimalLen(v))]));
        expect([...parseSettings(payload)]).toEqual(pairs);
        try {
          const m = parseSettings(noise);
          for (const [k, v] of m) expect(Number.isFinite(k) && Number.isFinite(v)).toBe(true);
        } catch (err) {
          if (!(err instanceof H3Error)) throw err;
        }
      }),
      params(N_FRAMES),
    );
  });
});
