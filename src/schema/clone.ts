// Deep copy of decoded JSON (plain objects, arrays, primitives): several times faster than structuredClone,
// which matters when a snapshot validates thousands of objects.
import type { Json } from '../config/resources.ts';

export function cloneJson<T extends Json>(v: T): T {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) {
    const out: Json[] = new Array(v.length);
    for (let i = 0; i < v.length; i++) out[i] = cloneJson(v[i]!);
    return out as T;
  }
  const out: { [k: string]: Json } = {};
  for (const k of Object.keys(v)) {
    const x = (v as { [k: string]: Json })[k];
    if (x !== undefined) out[k] = cloneJson(x);
  }
  return out as T;
}
