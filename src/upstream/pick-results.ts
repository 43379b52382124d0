// Preallocated pick results: a balancer hands out one frozen result object per endpoint instead of allocating
// a new union value on every pick.
import type { Endpoint, PickResult } from './balancer.ts';

export const NO_NODES: PickResult = Object.freeze({ ok: false, reason: 'no_nodes' });
export const EXHAUSTED: PickResult = Object.freeze({ ok: false, reason: 'exhausted' });

export function okResults(endpoints: readonly Endpoint[]): PickResult[] {
  return endpoints.map((endpoint) => Object.freeze({ ok: true as const, endpoint }));
}

/** Index of each endpoint by key, for begin/end bookkeeping. */
export function indexByKey(endpoints: readonly Endpoint[]): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < endpoints.length; i++) m.set(endpoints[i]!.key, i);
  return m;
}
