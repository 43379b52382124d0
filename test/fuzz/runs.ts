// Input counts of the fuzz targets. `npm test` runs each target with its small default count (the whole
// fuzz set stays within a few seconds per file); `npm run fuzz` sets FUZZ_RUNS to run every target with
// that count instead. FUZZ_SEED replays a reported failure (fast-check prints seed and path on failure).
import fc from 'fast-check';

const override = Number(process.env.FUZZ_RUNS);

/** The number of inputs a property runs: FUZZ_RUNS when set, else `base`. */
export function runs(base: number): number {
  return Number.isInteger(override) && override > 0 ? override : base;
}

/** fast-check parameters for `n` inputs (with FUZZ_SEED honoured). */
export function params(n: number): fc.Parameters<unknown> {
  const seed = Number(process.env.FUZZ_SEED);
  return { numRuns: n, ...(Number.isInteger(seed) ? { seed } : {}) };
}

/** Bytes arbitrary that mixes fully random buffers with mutations of `seeds` (flip, cut, splice, extend). */
export function mutatedBytes(seeds: readonly Buffer[], maxLength = 512): fc.Arbitrary<Buffer> {
  const random = fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));
  if (seeds.length === 0) return random;
  const seed = fc.constantFrom(...seeds);
  const mutation = fc.oneof(
    // overwrite a few bytes
    fc.tuple(seed, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 })).map(([s, edits]) => {
      const b = Buffer.from(s);
      for (const [at, v] of edits) if (b.length > 0) b[at % b.length] = v;
      return b;
    }),
    // truncate
    fc.tuple(seed, fc.nat()).map(([s, at]) => Buffer.from(s.subarray(0, s.length === 0 ? 0 : at % s.length))),
    // insert random bytes
    fc.tuple(seed, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 16 })).map(([s, at, ins]) => {
      const cut = s.length === 0 ? 0 : at % (s.length + 1);
      return Buffer.concat([s.subarray(0, cut), Buffer.from(ins), s.subarray(cut)]);
    }),
    // splice two seeds
    fc.tuple(seed, seed, fc.nat(), fc.nat()).map(([a, b, i, j]) =>
      Buffer.concat([a.subarray(0, a.length === 0 ? 0 : i % a.length), b.subarray(b.length === 0 ? 0 : j % b.length)]),
    ),
    // set a 16-bit big-endian length-like field to an extreme value
    fc.tuple(seed, fc.nat(), fc.constantFrom(0, 1, 0x7f, 0x80, 0xff, 0x100, 0x3fff, 0x4000, 0xffff)).map(([s, at, v]) => {
      const b = Buffer.from(s);
      if (b.length >= 2) b.writeUInt16BE(v, at % (b.length - 1));
      return b;
    }),
  );
  return fc.oneof({ weight: 1, arbitrary: random }, { weight: 3, arbitrary: mutation });
}
