// Fuzz target: the Admin API patch helpers (src/admin/patch.ts: mergePatch for PATCH bodies, subPathPatch for
// PATCH on a sub-path), moved from test/config/safe-json.test.ts so `npm run fuzz` runs them longer.
// Inputs: random JSON objects whose keys mix `__proto__`, `constructor`, `prototype`, inherited names and
// random strings, and random sub-paths over the same keys.
// Properties: no input reaches Object.prototype (a fresh object has no enumerable key and no prototype
// property turned into a string); a sub-path through a forbidden key is refused.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mergePatch, subPathPatch } from '../../src/admin/patch.ts';
import { params, runs } from './runs.ts';

const key = fc.oneof(fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'a', 'b'), fc.string({ maxLength: 6 }));
const json = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, fc.string(), fc.integer(), fc.constant(null), tie('obj')),
  obj: fc.dictionary(key, tie('value'), { maxKeys: 4 }),
})).obj as fc.Arbitrary<Record<string, unknown>>;

function prototypeClean(): boolean {
  const probe = {} as Record<string, unknown>;
  for (const k in probe) return false;
  return Object.getOwnPropertyNames(Object.prototype).every((n) => typeof (Object.prototype as any)[n] !== 'string');
}

const N = runs(2000);

describe(`fuzz: patch helpers never reach Object.prototype (${N} inputs each)`, () => {
  it('mergePatch', () => {
    fc.assert(
      fc.property(json, json, (a, b) => {
        try {
          mergePatch(a as never, b as never);
        } catch {
          /* forbidden keys are refused by throwing */
        }
        return prototypeClean();
      }),
      params(N),
    );
  });

  it('subPathPatch', () => {
    fc.assert(
      fc.property(json, fc.array(key, { minLength: 1, maxLength: 4 }), fc.string(), (a, path, v) => {
        const r = subPathPatch(a as never, path, v);
        if (path.some((p) => p === '__proto__' || p === 'constructor' || p === 'prototype')) expect(r.ok).toBe(false);
        return prototypeClean();
      }),
      params(N),
    );
  });
});
