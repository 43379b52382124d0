// The incremental renderer of the writable file store must write exactly what renderStandalone writes (the
// reference: one YAML/JSON document built and stringified at once), for any values, and reuse its cached
// entries only for unchanged item objects.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FieldCodec } from '../../src/config/encryption.ts';
import type { Json, JsonObject, Kind, StoredItem } from '../../src/config/resources.ts';
import { parseStandalone, renderStandalone } from '../../src/config/standalone-format.ts';
import { StandaloneRenderer } from '../../src/config/standalone-render.ts';

const KINDS: Kind[] = ['routes', 'upstreams', 'consumers', 'credentials', 'ssls', 'plugin_metadata', 'global_rules'];

function item(kind: Kind, id: string, value: JsonObject): StoredItem {
  return Object.freeze({ kind, id, key: `/apisix/${kind}/${id}`, value, createdIndex: 1, modifiedIndex: 1 });
}

// Strings with the characters that change YAML's choice of scalar style: newlines, leading spaces, quotes,
// colons, '#', '-', YAML 1.1 booleans and numbers-as-strings.
const tricky = fc.oneof(
  fc.string(),
  fc.constantFrom('', ' lead', 'trail ', 'a: b', '# x', '- x', 'yes', 'null', '0x1F', '1e3', "it's", '"q"', '\n', 'a\n\n  b\n', '  x\ny', '-----BEGIN KEY-----\nAbC=\n-----END KEY-----\n'),
  fc.array(fc.constantFrom('a', ' ', '\n', ':', '#', '"', "'", '\t', 'é', '|', '>'), { maxLength: 12 }).map((a) => a.join('')),
);
const json: fc.Arbitrary<Json> = fc.letrec<{ v: Json }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    tricky,
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.string({ minLength: 1, maxLength: 6 }), tricky.filter((s) => s !== '')), tie('v'), { maxKeys: 4 }),
  ),
})).v;

const items = fc
  .array(fc.tuple(fc.constantFrom(...KINDS), fc.stringMatching(/^[a-z0-9]{1,8}$/), fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), json, { maxKeys: 5 })), {
    maxLength: 8,
  })
  .map((xs) => {
    const seen = new Set<string>();
    const out: StoredItem[] = [];
    for (const [kind, id, value] of xs) {
      const storeId = kind === 'credentials' ? `u${id}/credentials/${id}` : id;
      if (seen.has(kind + storeId)) continue;
      seen.add(kind + storeId);
      out.push(item(kind, storeId, value as JsonObject));
    }
    return out;
  });

const opts = fc.record({
  genId: fc.oneof(fc.constant(0n), fc.bigInt({ min: 1n, max: 10n ** 25n })),
  confVersions: fc.array(fc.tuple(fc.constantFrom('routes', 'upstreams'), fc.nat()), { maxLength: 2 }).map((a) => new Map(a)),
});

describe('StandaloneRenderer', () => {
  for (const format of ['yaml', 'json'] as const) {
    it(`writes exactly what renderStandalone writes (${format}, random values)`, () => {
      fc.assert(
        fc.property(items, opts, (its, o) => {
          const r = new StandaloneRenderer(format);
          const want = renderStandalone(its, format, o);
          expect(r.render(its, o)).toBe(want);
          // Second render from the cache: same text.
          expect(r.render(its, o)).toBe(want);
        }),
        { numRuns: 400 },
      );
    });
  }

  it('reads back as the same items', () => {
    const its = [
      item('routes', '1', { uri: '/a', upstream: { nodes: { '127.0.0.1:80': 1 } } }),
      item('consumers', 'jack', { plugins: { 'key-auth': { key: 'k' } } }),
      item('credentials', 'jack/credentials/c1', { plugins: { 'key-auth': { key: 'k2' } } }),
    ];
    for (const format of ['yaml', 'json'] as const) {
      const text = new StandaloneRenderer(format).render(its, { genId: 7n });
      const parsed = parseStandalone(text, format === 'yaml' ? 'apisix.yaml' : 'apisix.json');
      expect(parsed.ok).toBe(true);
      if (!parsed.ok) return;
      expect(parsed.genId).toBe(7n);
      expect(parsed.items.map((i) => `${i.kind}/${i.id}`).sort()).toEqual(['consumers/jack', 'credentials/jack/credentials/c1', 'routes/1']);
    }
  });

  it('encrypts secret fields in the text only, and re-renders only changed item objects', () => {
    const codec = new FieldCodec({ keyring: ['0123456789abcdef0123456789abcdef'], encryptFields: true });
    const r = new StandaloneRenderer('yaml', codec);
    const jack = item('consumers', 'jack', { username: 'jack', plugins: { 'key-auth': { key: 'plain-secret-key' } } });
    const text = r.render([jack]);
    expect(text).not.toContain('plain-secret-key');
    expect(jack.value).toEqual({ username: 'jack', plugins: { 'key-auth': { key: 'plain-secret-key' } } });
    const encrypted = codec.encode('consumers', jack.value, 'jack');
    expect(text).toBe(renderStandalone([{ ...jack, value: encrypted }], 'yaml'));
    // A new object for the same key is rendered anew; the unchanged one comes from the cache.
    const jack2 = item('consumers', 'jack', { username: 'jack', plugins: { 'key-auth': { key: 'other-secret' } } });
    const text2 = r.render([jack2]);
    expect(text2).not.toContain('other-secret');
    expect(text2).not.toBe(text);
  });
});
