// PATCH semantics of the Admin API: a recursive merge (RFC 7386: objects merge, arrays and scalars replace,
// null deletes) and a sub-path replace (`PATCH /routes/1/upstream/nodes`). Both return new objects; the
// stored value is never mutated in place.
import type { Json, JsonObject } from '../config/resources.ts';

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function mergePatch(target: JsonObject, patch: JsonObject): JsonObject {
  const out: JsonObject = { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) {
      delete out[k];
    } else if (isObject(v)) {
      const cur = out[k];
      out[k] = mergePatch(isObject(cur) ? cur : {}, v);
    } else {
      out[k] = structuredClone(v);
    }
  }
  return out;
}

export type SubPathResult = { ok: true; value: JsonObject } | { ok: false; error: string };

/**
 * Replaces the value at `path` (segments below the resource), creating missing intermediate objects.
 * A null value removes the key. A non-object intermediate gives APISIX's `invalid sub-path: /a/b`.
 */
export function subPathPatch(target: JsonObject, path: readonly string[], value: Json): SubPathResult {
  if (path.length === 0) {
    return isObject(value) ? { ok: true, value: structuredClone(value) } : { ok: false, error: 'invalid configuration' };
  }
  const root = structuredClone(target);
  let cur: JsonObject = root;
  for (let i = 0; i < path.length - 1; i++) {
    const seg = path[i]!;
    if (cur[seg] === undefined || cur[seg] === null) cur[seg] = {};
    const next = cur[seg];
    if (!isObject(next)) return { ok: false, error: `invalid sub-path: /${path.slice(0, i + 1).join('/')}` };
    cur = next;
  }
  const last = path[path.length - 1]!;
  if (value === null) delete cur[last];
  else cur[last] = structuredClone(value);
  return { ok: true, value: root };
}
