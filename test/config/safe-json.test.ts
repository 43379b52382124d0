// Prototype-safety of every place user JSON enters or is merged: the Admin API patch helpers (property-based
// with fast-check, forbidden keys mixed into random keys), etcd value decoding and standalone files.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mergePatch, subPathPatch } from '../../src/admin/patch.ts';
import { parseJsonSafe, unsafeJsonReason } from '../../src/config/safe-json.ts';
import { decodeValue } from '../../src/config/store-common.ts';
import { parseStandalone } from '../../src/config/standalone-format.ts';

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

describe('patch helpers never reach Object.prototype (2,000 inputs each)', () => {
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
      { numRuns: 2000 },
    );
  });

  it('subPathPatch', () => {
    fc.assert(
      fc.property(json, fc.array(key, { minLength: 1, maxLength: 4 }), fc.string(), (a, path, v) => {
        const r = subPathPatch(a as never, path, v);
        if (path.some((p) => p === '__proto__' || p === 'constructor' || p === 'prototype')) expect(r.ok).toBe(false);
        return prototypeClean();
      }),
      { numRuns: 2000 },
    );
  });
});

describe('entry points refuse forbidden keys and deep nesting', () => {
  it('parseJsonSafe names the key and where it is', () => {
    const r = parseJsonSafe('{"upstream":{"nodes":{"__proto__":{"x":1}}}}');
    expect(r).toEqual({ ok: false, error: 'forbidden key "__proto__" at /upstream/nodes' });
    expect(unsafeJsonReason(JSON.parse('[[[[1]]]]'), 3)).toBe('nesting deeper than 3 levels at /0/0/0');
    expect(parseJsonSafe('{"a":[{"b":"constructor"}]}').ok).toBe(true);
  });

  it('an etcd value with plugins.__proto__ is an item error, not a crash', () => {
    const r = decodeValue('{"uri":"/x","plugins":{"__proto__":{"limit-count":{}}}}');
    expect(r.ok).toBe(false);
    expect(decodeValue(`{"labels":${'['.repeat(3000)}${']'.repeat(3000)}}`).ok).toBe(false);
  });

  it('a standalone file with a prototype key is not applied', () => {
    const r = parseStandalone('routes:\n  - id: 1\n    uri: /x\n    plugins:\n      __proto__: {x: 1}\n#END\n', 'apisix.yaml');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain('forbidden key "__proto__" at /routes/0/plugins');
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });
});
