// Incremental rendering of the standalone file for the writable FileStore.
//
// Rendering the whole config through the YAML library on every Admin API write cost O(config size) in
// YAML AST nodes per write (with 1,000 routes about 15 ms of CPU and megabytes of garbage each time), which
// made the write path quadratic. Here every item is rendered once, when its StoredItem object is new (items
// are immutable: a change is a new object), as the text of one sequence entry; a write then only joins the
// cached entries. The output is byte-identical to renderStandalone (test/config/standalone-render.test.ts
// checks it on random values), so a file written either way reads the same and diffs stay minimal.
import { stringify } from 'yaml';
import type { FieldCodec } from './encryption.ts';
import type { JsonObject, Kind, StoredItem } from './resources.ts';
import { GEN_ID_KEY, STANDALONE_COLLECTIONS, standaloneValue } from './standalone-format.ts';

const YAML_OPTS = { lineWidth: 0, aliasDuplicateObjects: false } as const;

export interface RenderOptions {
  genId?: bigint;
  confVersions?: ReadonlyMap<string, number>;
}

/**
 * One sequence entry under a top-level key: every non-empty line indented by `pad`. Built with join so the
 * cached string is flat (a `+=` rope would keep one cons cell per line alive for as long as it is cached).
 */
function indent(text: string, pad: string): string {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) if (lines[i] !== '') lines[i] = pad + lines[i];
  return lines.join('\n');
}

export class StandaloneRenderer {
  readonly #format: 'yaml' | 'json';
  readonly #codec: FieldCodec | undefined;
  /** Rendered entry per item object; entries of replaced or deleted items go with their objects. */
  #cache = new WeakMap<StoredItem, string>();

  /** `codec`: secret fields are encrypted in the rendered text (the items themselves hold plaintext). */
  constructor(format: 'yaml' | 'json', codec?: FieldCodec) {
    this.#format = format;
    this.#codec = codec?.active ? codec : undefined;
  }

  /** The file text of `items` (in this order within each collection), as renderStandalone would write it. */
  render(items: Iterable<StoredItem>, opts: RenderOptions = {}): string {
    const groups = new Map<Kind, string[]>();
    const credentials: string[] = [];
    for (const item of items) {
      const entry = this.#entry(item);
      if (item.kind === 'credentials') {
        credentials.push(entry);
        continue;
      }
      let g = groups.get(item.kind);
      if (!g) groups.set(item.kind, (g = []));
      g.push(entry);
    }
    if (credentials.length > 0) {
      const c = groups.get('consumers');
      if (c) for (const e of credentials) c.push(e);
      else groups.set('consumers', credentials);
    }
    const scalars: JsonObject = {};
    let hasScalars = false;
    for (const [coll, v] of opts.confVersions ?? []) {
      scalars[`${coll}_conf_version`] = v;
      hasScalars = true;
    }
    const gen = opts.genId ?? 0n;
    if (gen > 0n) {
      scalars[GEN_ID_KEY] = gen <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(gen) : gen.toString();
      hasScalars = true;
    }
    return this.#format === 'json' ? this.#json(groups, scalars) : this.#yaml(groups, scalars, hasScalars);
  }

  #entry(item: StoredItem): string {
    let e = this.#cache.get(item);
    if (e !== undefined) return e;
    const stored = this.#codec ? this.#codec.encode(item.kind, item.value, item.id) : item.value;
    const value = standaloneValue(item.kind, item.id, stored);
    e = this.#format === 'json' ? indent(JSON.stringify(value, null, 2), '    ') : indent(stringify([value], YAML_OPTS), '  ');
    this.#cache.set(item, e);
    return e;
  }

  #yaml(groups: Map<Kind, string[]>, scalars: JsonObject, hasScalars: boolean): string {
    const parts: string[] = [];
    for (const coll of STANDALONE_COLLECTIONS) {
      const g = groups.get(coll);
      if (!g || g.length === 0) continue;
      parts.push(`${coll}:\n`);
      for (const e of g) parts.push(e);
    }
    if (hasScalars) parts.push(stringify(scalars, YAML_OPTS));
    if (parts.length === 0) parts.push(stringify({}, YAML_OPTS));
    parts.push('#END\n');
    return parts.join('');
  }

  #json(groups: Map<Kind, string[]>, scalars: JsonObject): string {
    const parts: string[] = [];
    for (const coll of STANDALONE_COLLECTIONS) {
      const g = groups.get(coll);
      if (g && g.length > 0) parts.push(`  ${JSON.stringify(coll)}: [\n${g.join(',\n')}\n  ]`);
    }
    for (const [k, v] of Object.entries(scalars)) parts.push(`  ${JSON.stringify(k)}: ${JSON.stringify(v)}`);
    return (parts.length === 0 ? '{}' : `{\n${parts.join(',\n')}\n}`) + '\n';
  }
}
