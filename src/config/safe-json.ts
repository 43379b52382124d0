// Prototype-safe handling of user JSON (Admin API bodies, etcd values, standalone files). Keys that reach
// Object.prototype through ordinary property assignment (`__proto__`) or that shadow it in ways plugins and
// merge code do not expect (`constructor`, `prototype`) are refused wherever configuration enters, and the
// nesting depth is bounded so recursive consumers (schema validation, structuredClone, merges) cannot
// overflow the stack on hostile input.

/** Keys no configuration object may carry. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** Deeper than any real resource (routes nest about 10 levels); far below the stack depth of recursive walkers. */
export const MAX_JSON_DEPTH = 100;

/**
 * Walks `value` iteratively and returns an error text for the first forbidden key or excessive depth, or null.
 * The path in the message uses JSON-pointer-like segments so a user finds the offending key.
 */
export function unsafeJsonReason(value: unknown, maxDepth = MAX_JSON_DEPTH): string | null {
  if (typeof value !== 'object' || value === null) return null;
  const stack: { v: object; depth: number; path: string }[] = [{ v: value, depth: 1, path: '' }];
  while (stack.length > 0) {
    const { v, depth, path } = stack.pop()!;
    if (depth > maxDepth) return `nesting deeper than ${maxDepth} levels at ${path === '' ? '/' : path}`;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const e: unknown = v[i];
        if (typeof e === 'object' && e !== null) stack.push({ v: e, depth: depth + 1, path: `${path}/${i}` });
      }
      continue;
    }
    for (const k of Object.keys(v)) {
      if (FORBIDDEN_KEYS.has(k)) return `forbidden key "${k}" at ${path === '' ? '/' : path}`;
      const e: unknown = (v as Record<string, unknown>)[k];
      if (typeof e === 'object' && e !== null) stack.push({ v: e, depth: depth + 1, path: `${path}/${k}` });
    }
  }
  return null;
}

export type SafeParse = { ok: true; value: unknown } | { ok: false; error: string };

/** JSON.parse plus the checks above. JSON.parse defines `__proto__` as an own key, so the walk sees it. */
export function parseJsonSafe(text: string): SafeParse {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
  const bad = unsafeJsonReason(value);
  return bad === null ? { ok: true, value } : { ok: false, error: bad };
}

/** Own-property read: never follows the prototype chain (a `__proto__` segment reads undefined). */
export function ownGet(obj: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

/** Own-property write: never invokes the `__proto__` setter, whatever the key. */
export function ownSet(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}
