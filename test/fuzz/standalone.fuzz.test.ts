// Fuzz target: the standalone file parser (src/config/standalone-format.ts: YAML via `yaml`, JSON, ${{VAR}}
// substitution, collection and id checks).
// Properties: no text makes parseStandalone throw, every failure is a value with a message naming the file;
// mutations of real documents stay errors-as-values; renderStandalone output parses back to the same items.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JsonObject, StoredItem } from '../../src/config/resources.ts';
import { parseStandalone, renderStandalone, STANDALONE_COLLECTIONS } from '../../src/config/standalone-format.ts';
import { params, runs } from './runs.ts';

/** Parses, asserting the result is a well-formed value. */
function parse(text: string, fileName: string): ReturnType<typeof parseStandalone> {
  const r = parseStandalone(text, fileName);
  if (r.ok) {
    expect(Array.isArray(r.items)).toBe(true);
    for (const item of r.items) expect(typeof item.id).toBe('string');
  } else {
    expect(typeof r.error).toBe('string');
    expect(r.error.startsWith(fileName)).toBe(true);
  }
  return r;
}

const YAML_PIECES = [
  'routes:', 'upstreams:', 'consumers:', 'services:', 'plugin_metadata:', 'ssls:', 'secrets:', 'switchyard_gen_id:',
  'routes_conf_version: 3', '\n', '\n  ', '- ', 'id: 1', 'id: "a/b"', 'id: x/credentials/y', 'username: jack', 'uri: /a',
  '{', '}', '[', ']', ',', ':', '&a ', '*a', '<<: *a', '!!str ', '!!binary ', '? ', '|', '>', '"', "'", '#', '#END', '${{HOME}}',
  '${{SWY_FUZZ_UNSET}}', '${{X:=d}}', '~', 'null', '---', '...', '%YAML 1.2', '\t', '\u0000', '\ufeff', 'é',
];
const yamlish = fc.array(fc.constantFrom(...YAML_PIECES), { maxLength: 30 }).map((p) => p.join(''));
const jsonish = fc.oneof(
  fc.jsonValue({ maxDepth: 5 }).map((v) => JSON.stringify(v)),
  fc.dictionary(fc.constantFrom(...STANDALONE_COLLECTIONS, 'switchyard_gen_id', 'routes_conf_version', '__proto__', 'x'), fc.jsonValue({ maxDepth: 3 })).map((v) => JSON.stringify(v)),
);

const idText = fc.oneof(fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/), fc.integer({ min: 0, max: 1e6 }).map(String));
const leafValue = fc.oneof(
  fc.string({ maxLength: 10 }).filter((s) => !s.includes('${{')),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Object.is(d, -0)),
  fc.boolean(),
  fc.constant(null),
);
const value: fc.Arbitrary<JsonObject> = fc.dictionary(
  fc.string({ minLength: 1, maxLength: 8 }).filter((k) => k !== '__proto__' && k !== 'id' && k !== 'username' && !k.includes('${{')),
  fc.oneof(leafValue, fc.array(leafValue, { maxLength: 3 }), fc.dictionary(fc.stringMatching(/^[a-z]{1,5}$/), leafValue, { maxKeys: 3 })),
  { maxKeys: 4 },
) as fc.Arbitrary<JsonObject>;
const KINDS = STANDALONE_COLLECTIONS.filter((k) => k !== 'secrets' && k !== 'consumers');

function items(specs: { kind: (typeof KINDS)[number]; id: string; value: JsonObject }[]): StoredItem[] {
  const seen = new Set<string>();
  const out: StoredItem[] = [];
  for (const s of specs) {
    const key = `${s.kind}/${s.id}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ kind: s.kind, id: s.id, key: `/apisix/${key}`, value: s.value, createdIndex: 1, modifiedIndex: 1 });
  }
  return out;
}
const itemSet = fc
  .array(fc.record({ kind: fc.constantFrom(...KINDS), id: idText, value }), { maxLength: 6 })
  .map(items);

/** A valid document with its text mutated: a character replaced, a span deleted or duplicated. */
const mutated = fc
  .tuple(itemSet, fc.constantFrom<'yaml' | 'json'>('yaml', 'json'), fc.nat(), fc.nat(), fc.constantFrom('', ' ', '\n', ':', '- ', '{', '"', '&x ', '*x', '#END\n', '\t'))
  .map(([its, fmt, at, len, ins]) => {
    const text = renderStandalone(its, fmt);
    const a = text.length === 0 ? 0 : at % text.length;
    const b = Math.min(text.length, a + (len % 16));
    return { fmt, text: text.slice(0, a) + ins + text.slice(b) };
  });

const N_TEXT = runs(1500);
const N_MUT = runs(1000);
const N_ROUND = runs(500);

describe('fuzz: standalone YAML/JSON', () => {
  it(`random YAML-ish and JSON-ish texts are parsed or rejected as values (${N_TEXT} inputs)`, () => {
    fc.assert(
      fc.property(fc.oneof(yamlish, yamlish.map((t) => t + '\n#END\n'), jsonish, fc.string({ maxLength: 40 })), fc.constantFrom('apisix.yaml', 'apisix.json', 'apisix.yml'), (text, file) => {
        parse(text, file);
      }),
      params(N_TEXT),
    );
  });

  it(`mutated real documents are parsed or rejected as values (${N_MUT} inputs)`, () => {
    fc.assert(
      fc.property(mutated, ({ fmt, text }) => {
        parse(text, fmt === 'yaml' ? 'apisix.yaml' : 'apisix.json');
      }),
      params(N_MUT),
    );
  });

  it(`rendered documents parse back to the same items (${N_ROUND} inputs)`, () => {
    fc.assert(
      fc.property(itemSet, fc.constantFrom<'yaml' | 'json'>('yaml', 'json'), (its, fmt) => {
        const r = parse(renderStandalone(its, fmt), fmt === 'yaml' ? 'apisix.yaml' : 'apisix.json');
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        const got = new Map(r.items.map((i) => [`${i.kind}/${i.id}`, i.value]));
        expect(got.size).toBe(its.length);
        for (const i of its) {
          const v = got.get(`${i.kind}/${i.id}`);
          expect(v).toBeDefined();
          // The id field is written into the value; everything else comes back unchanged.
          const { id: _id, ...rest } = v as JsonObject;
          expect(rest).toEqual(i.value);
        }
      }),
      params(N_ROUND),
    );
  });

  it('hostile shapes are rejected as values: deep nesting, alias bombs, huge anchors', () => {
    const deepFlow = `routes: [{id: "1", x: ${'['.repeat(20_000)}${']'.repeat(20_000)}}]\n#END\n`;
    const deepBlock = 'routes:\n  - id: "1"\n    x:\n' + Array.from({ length: 3000 }, (_, i) => ' '.repeat(6 + 2 * i) + '-').join('\n') + ' 1\n#END\n';
    const deepJson = `{"routes":[{"id":"1","x":${'['.repeat(100_000)}${']'.repeat(100_000)}}]}`;
    let bomb = 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n';
    for (let i = 1; i < 12; i++) bomb += `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]\n`;
    bomb += 'routes: []\n#END\n';
    for (const [text, file] of [[deepFlow, 'apisix.yaml'], [deepBlock, 'apisix.yaml'], [deepJson, 'apisix.json'], [bomb, 'apisix.yaml']] as const) {
      const r = parse(text, file);
      expect(r.ok).toBe(false);
    }
  });
});
