// Prototype-safety of the places user JSON enters: the JSON entry point, etcd value decoding and standalone
// files. The property tests of the Admin API patch helpers are the fuzz target test/fuzz/admin-patch.fuzz.test.ts
// (input counts scaled by FUZZ_RUNS there).
import { describe, expect, it } from 'vitest';
import { parseJsonSafe, unsafeJsonReason } from '../../src/config/safe-json.ts';
import { decodeValue } from '../../src/config/store-common.ts';
import { parseStandalone } from '../../src/config/standalone-format.ts';

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
