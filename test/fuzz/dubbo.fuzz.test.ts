// Fuzz target: the Dubbo input path (moved from test/dubbo/decoder-fuzz.test.ts so `npm run fuzz` runs it
// longer). For arbitrary bytes in arbitrary splits (random noise, and frames with valid magic but random
// flags, lengths and bodies) the frame decoder never throws, never
// returns a body above its bound, never retains HEADER + bound bytes once it asks for more, and the body
// decoders (request head, request body, response) return values instead of throwing.
import fc from 'fast-check';
import hessian from 'hessian.js';
import { describe, expect, it } from 'vitest';
import { HEADER_LENGTH, decodeRequestBody, decodeRequestHead, decodeResponse } from '../../protocols/dubbo/codec.ts';
import { FrameDecoder } from '../../protocols/dubbo/frame-decoder.ts';
import { params, runs } from './runs.ts';

const MAX = 4096;
const N_FRAMES = runs(2000);
const N_HEAD = runs(1000);

/** A frame header with the right magic and a random length (often above MAX), then some bytes. */
const framed = fc
  .record({
    flags: fc.integer({ min: 0, max: 255 }),
    status: fc.integer({ min: 0, max: 255 }),
    // -1: exactly the body's length (a complete frame).
    length: fc.oneof(fc.constant(-1), fc.constant(-1), fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: MAX + 64 }), fc.constant(0xffffffff)),
    body: fc.uint8Array({ maxLength: 300 }),
  })
  .map(({ flags, status, length, body }) => {
    const h = Buffer.alloc(HEADER_LENGTH);
    h.set([0xda, 0xbb, flags, status]);
    h.writeUInt32BE(length < 0 ? body.length : length, 12);
    return Buffer.concat([h, Buffer.from(body)]);
  });

const noise = fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a));
const input = fc.array(fc.oneof({ arbitrary: noise, weight: 1 }, { arbitrary: framed, weight: 4 }), { maxLength: 6 }).map((parts) => Buffer.concat(parts));

function splits(buf: Buffer, cuts: number[]): Buffer[] {
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

describe('dubbo decoder fuzz', () => {
  it(`never throws and stays within the frame bound (${N_FRAMES} inputs)`, () => {
    const seen = { frames: 0, errors: 0 };
    fc.assert(
      fc.property(input, fc.array(fc.nat(), { maxLength: 12 }), (buf, cuts) => {
        const d = new FrameDecoder(MAX);
        let failed = false;
        for (const part of splits(buf, cuts)) {
          d.push(part);
          for (;;) {
            const s = d.next();
            if (s.kind === 'need') {
              expect(d.buffered).toBeLessThan(HEADER_LENGTH + MAX);
              break;
            }
            if (s.kind === 'error') {
              failed = true;
              seen.errors++;
              expect(d.buffered).toBe(0);
              break;
            }
            seen.frames++;
            expect(s.frame.body.length).toBeLessThanOrEqual(MAX);
            expect(s.frame.body.length).toBe(s.frame.bodyLength);
            const head = decodeRequestHead(s.frame.body);
            expect(typeof head.ok).toBe('boolean');
            expect(typeof decodeRequestBody(s.frame.body).ok).toBe('boolean');
            expect(typeof decodeResponse(s.frame.status, s.frame.body).ok).toBe('boolean');
          }
          if (failed) break;
        }
      }),
      params(N_FRAMES),
    );
    // The generator reaches both outcomes often (the property is not vacuous).
    expect(seen.frames).toBeGreaterThan(N_FRAMES / 10);
    expect(seen.errors).toBeGreaterThan(N_FRAMES / 10);
  });

  it(`reads the routing head as hessian.js wrote it, for any strings (ASCII fast path and fallback) (${N_HEAD} inputs)`, () => {
    const text = fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 40 }));
    fc.assert(
      fc.property(text, text.filter((x) => x !== ''), text, text.filter((x) => x !== ''), fc.uint8Array({ maxLength: 20 }), (v, svc, ver, m, tail) => {
        const e = new hessian.EncoderV2();
        for (const x of [v, svc, ver, m]) e.write(x);
        const body = Buffer.concat([e.get(), Buffer.from(tail)]);
        expect(decodeRequestHead(body)).toEqual({ ok: true, value: { dubboVersion: v, service: svc, version: ver, method: m } });
      }),
      params(N_HEAD),
    );
  });
});
