// APISIX standalone format (conf/apisix.yaml, apisix.json) <-> store items.
//
// Top-level keys are collection arrays. Each item carries its own id: `id` for most kinds, `username` for
// consumers, the plugin name as `id` for plugin_metadata; an object without one gets APISIX's `arr_<n>`. Credentials live in `consumers:` with
// `id: <username>/credentials/<cid>`; secrets use `id: <manager>/<id>`. `<collection>_conf_version` keys are
// accepted and ignored (revisions are the store's). `switchyard_gen_id` is Switchyard's own key: the last id
// handed out by nextId() in writable mode, so generated ids stay monotonic across restarts.
import { MAX_JSON_DEPTH, unsafeJsonReason } from './safe-json.ts';
import { LineCounter, parseDocument, stringify } from 'yaml';
import { substituteEnv } from './env-subst.ts';
import { KIND_SINGULAR, RESOURCE_KINDS, itemKey, parseKey, type Json, type JsonObject, type Kind, type StoredItem } from './resources.ts';

/** Collections in file order; credentials are written inside `consumers`. */
export const STANDALONE_COLLECTIONS: readonly Kind[] = RESOURCE_KINDS.filter((k) => k !== 'credentials');

export const GEN_ID_KEY = 'switchyard_gen_id';
const END_MARKER = /#END\s*$/;
const PROBE_PREFIX = '/apisix';

export interface StandaloneItem {
  kind: Kind;
  id: string;
  value: JsonObject;
}

export type ParseResult =
  | { ok: true; items: StandaloneItem[]; genId: bigint; warnings: string[]; confVersions: Map<string, number> }
  | { ok: false; error: string };

export function isYamlFile(fileName: string): boolean {
  return !/\.json$/i.test(fileName);
}

function isObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The field of a kind's item that carries its id in the file. */
function idField(kind: Kind): 'username' | 'id' {
  return kind === 'consumers' ? 'username' : 'id';
}

/**
 * The value as written to the file: its id field set to `id`. Returns `value` itself when it already carries
 * that id, so a value read from a file round-trips unchanged.
 */
export function standaloneValue(kind: Kind, id: string, value: JsonObject): JsonObject {
  const field = idField(kind);
  const cur = value[field];
  if ((typeof cur === 'string' || typeof cur === 'number') && String(cur) === id) return value;
  const out: JsonObject = { [field]: id };
  for (const [k, v] of Object.entries(value)) if (k !== field) out[k] = v;
  return out;
}

function itemId(v: Json | undefined): string | null {
  if (typeof v === 'string' && v !== '') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return String(v);
  return null;
}

function parseGenId(v: unknown): bigint | null {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === 'string' && /^\d{1,30}$/.test(v)) return BigInt(v);
  return null;
}

/** Parses a standalone file's text (after the #END check and ${{VAR}} substitution). Never throws. */
export function parseStandalone(text: string, fileName: string): ParseResult {
  const yaml = isYamlFile(fileName);
  if (yaml && !END_MARKER.test(text)) {
    return { ok: false, error: `${fileName}: the file does not end with #END (incomplete write?); not applied` };
  }
  const subst = substituteEnv(text);
  if (!subst.ok) return { ok: false, error: `${fileName}: ${subst.error}` };

  let root: unknown;
  let where: (coll: string, i: number) => string;
  if (yaml) {
    const lines = new LineCounter();
    const doc = parseDocument(subst.text, { lineCounter: lines, uniqueKeys: true, prettyErrors: true });
    const err = doc.errors[0];
    if (err) {
      const pos = err.linePos?.[0];
      const msg = err.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      return { ok: false, error: `${fileName}${pos ? `:${pos.line}:${pos.col}` : ''}: ${msg}` };
    }
    try {
      root = doc.toJS({ maxAliasCount: 1000 });
    } catch (e) {
      // A hostile file nested thousands of levels overflows the converter's recursion.
      const msg = e instanceof RangeError ? `nesting deeper than ${MAX_JSON_DEPTH} levels` : (e as Error).message;
      return { ok: false, error: `${fileName}: ${msg}` };
    }
    where = (coll, i) => {
      const node = doc.getIn([coll, i], true) as { range?: [number, number, number] } | undefined;
      const pos = node?.range ? lines.linePos(node.range[0]) : undefined;
      return pos ? `${coll}[${i}] (line ${pos.line})` : `${coll}[${i}]`;
    };
  } else {
    try {
      root = JSON.parse(subst.text);
    } catch (e) {
      return { ok: false, error: `${fileName}: ${(e as Error).message}` };
    }
    where = (coll, i) => `${coll}[${i}]`;
  }
  return itemsFromRoot(root, fileName, where);
}

/**
 * The items of an already parsed standalone document (a file, or an Admin API /configs body): ids assigned as
 * APISIX does, forbidden keys and duplicates refused. `label` prefixes error texts.
 */
export function itemsFromRoot(
  rootIn: unknown,
  label: string,
  where: (coll: string, i: number) => string = (coll, i) => `${coll}[${i}]`,
): ParseResult {
  let root = rootIn;
  const fileName = label;
  if (root === null || root === undefined) root = {};
  const unsafe = unsafeJsonReason(root);
  if (unsafe !== null) return { ok: false, error: `${fileName}: ${unsafe}; not applied` };
  if (!isObject(root)) return { ok: false, error: `${fileName}: the top level must be a mapping of collections` };

  const items: StandaloneItem[] = [];
  const warnings: string[] = [];
  const seen = new Map<string, string>();
  const known = new Set<string>(STANDALONE_COLLECTIONS);
  let genId = 0n;
  const confVersions = new Map<string, number>();
  for (const [key, val] of Object.entries(root)) {
    if (key === GEN_ID_KEY) {
      const g = parseGenId(val);
      if (g === null) return { ok: false, error: `${fileName}: ${GEN_ID_KEY} must be a non-negative integer` };
      genId = g;
      continue;
    }
    if (key.endsWith('_conf_version') && known.has(key.slice(0, -'_conf_version'.length))) {
      if (typeof val !== 'number' || !Number.isInteger(val)) {
        return { ok: false, error: `${fileName}: ${key} must be an integer` };
      }
      confVersions.set(key.slice(0, -'_conf_version'.length), val);
      continue;
    }
    if (!known.has(key)) {
      warnings.push(`unknown top-level key "${key}" ignored`);
      continue;
    }
    if (val === null) continue;
    if (!Array.isArray(val)) return { ok: false, error: `${fileName}: "${key}" must be an array` };
    for (let i = 0; i < val.length; i++) {
      const v = val[i];
      if (!isObject(v)) return { ok: false, error: `${fileName}: ${where(key, i)} must be an object` };
      let kind = key as Kind;
      let id: string | null;
      let value = v;
      if (key === 'consumers' && typeof v.id === 'string' && v.id.includes('/credentials/')) {
        kind = 'credentials';
        id = v.id;
      } else {
        const raw = v[idField(kind)];
        id = itemId(raw);
        if (id === null && (raw === undefined || raw === null)) {
          // APISIX (core/config_yaml.lua) names an object without id `arr_<n>`, n its 1-based position in the
          // collection, and sets that id on the value. A consumer's id is its username, which the schema requires.
          if (kind === 'consumers') return { ok: false, error: `${fileName}: ${where(key, i)} has no valid "username"` };
          id = `arr_${i + 1}`;
          value = standaloneValue(kind, id, v);
        }
      }
      if (id === null) {
        return { ok: false, error: `${fileName}: ${where(key, i)} has no valid "${idField(kind)}"` };
      }
      const k = itemKey(PROBE_PREFIX, kind, id);
      if (parseKey(PROBE_PREFIX, k)?.kind !== kind) {
        return { ok: false, error: `${fileName}: ${where(key, i)}: invalid ${KIND_SINGULAR[kind]} id "${id}"` };
      }
      const prev = seen.get(k);
      if (prev !== undefined) {
        return {
          ok: false,
          error: `${fileName}: ${where(key, i)}: duplicate ${KIND_SINGULAR[kind]} id "${id}" (first at ${prev})`,
        };
      }
      seen.set(k, where(key, i));
      items.push({ kind, id, value });
    }
  }
  return { ok: true, items, genId, warnings, confVersions };
}

/** Renders items as a standalone file; parseStandalone() of the result yields the same items and values. */
export function renderStandalone(
  items: readonly StoredItem[],
  format: 'yaml' | 'json',
  opts: { genId?: bigint; confVersions?: ReadonlyMap<string, number> } = {},
): string {
  const groups = new Map<string, JsonObject[]>();
  const credentials: JsonObject[] = [];
  for (const item of items) {
    const value = standaloneValue(item.kind, item.id, item.value);
    if (item.kind === 'credentials') {
      credentials.push(value);
      continue;
    }
    let g = groups.get(item.kind);
    if (!g) groups.set(item.kind, (g = []));
    g.push(value);
  }
  if (credentials.length > 0) groups.set('consumers', [...(groups.get('consumers') ?? []), ...credentials]);
  const doc: JsonObject = {};
  for (const coll of STANDALONE_COLLECTIONS) {
    const g = groups.get(coll);
    if (g && g.length > 0) doc[coll] = g;
  }
  for (const [coll, v] of opts.confVersions ?? []) doc[`${coll}_conf_version`] = v;
  const gen = opts.genId ?? 0n;
  if (gen > 0n) doc[GEN_ID_KEY] = gen <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(gen) : gen.toString();
  if (format === 'json') return JSON.stringify(doc, null, 2) + '\n';
  return stringify(doc, { lineWidth: 0, aliasDuplicateObjects: false }) + '#END\n';
}
