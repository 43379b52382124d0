// PATCH semantics of the Admin API: a recursive merge (RFC 7386: objects merge, arrays and scalars replace,
// null deletes) and a sub-path replace (`PATCH /routes/1/upstream/nodes`). Both return new objects; the
// stored value is never mutated in place. Every read and write is an own-property operation and forbidden
// keys (`__proto__`, `constructor`, `prototype`) are refused, so no user-chosen key or path segment can reach
// Object.prototype.
import type { Json, JsonObject } from '../config/resources.ts';
import { FORBIDDEN_KEYS, ownGet, ownSet } from '../config/safe-json.ts';

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Thrown only for forbidden keys; bodies are checked before they get here, so this is a second line. */
export class ForbiddenKeyError extends Error {}

export function mergePatch(target: JsonObject, patch: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const k of Object.keys(target)) ownSet(out, k, target[k]);
  for (const k of Object.keys(patch)) {
    if (FORBIDDEN_KEYS.has(k)) throw new ForbiddenKeyError(`forbidden key "${k}"`);
    const v = patch[k];
    if (v === null) {
      delete out[k];
    } else if (isObject(v)) {
      const cur = ownGet(out, k);
      ownSet(out, k, mergePatch(isObject(cur) ? cur : {}, v));
    } else {
      ownSet(out, k, structuredClone(v));
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
  for (const seg of path) {
    if (FORBIDDEN_KEYS.has(seg)) return { ok: false, error: `invalid sub-path: forbidden key "${seg}"` };
  }
  const root = structuredClone(target);
  let cur: JsonObject = root;
  for (let i = 0; i < path.length - 1; i++) {
    const seg = path[i]!;
    let next = ownGet(cur, seg);
    if (next === undefined || next === null) {
      next = {};
      ownSet(cur, seg, next);
    }
    if (!isObject(next)) return { ok: false, error: `invalid sub-path: /${path.slice(0, i + 1).join('/')}` };
    cur = next;
  }
  const last = path[path.length - 1]!;
  if (value === null) delete cur[last];
  else ownSet(cur, last, structuredClone(value));
  return { ok: true, value: root };
}
