// Snapshots built one from the other (what the RuntimeManager does on every change) equal fresh builds, and
// sameKind()/diff() report exactly what changed between them.
import { describe, expect, it } from 'vitest';
import { buildSnapshot, type Snapshot } from '../../src/config/snapshot.ts';
import { checkExpr } from '../../src/router/expr.ts';
import { Config, makeRegistry, upstream } from './helpers.ts';

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function view(s: Snapshot): unknown {
  return {
    routes: s.list('routes').map((r) => [r.item.id, r.value]),
    upstreams: s.list('upstreams').map((r) => [r.item.id, r.value]),
    errors: s.errors.map((e) => e.key),
  };
}

describe('snapshot reuse', () => {
  it('incremental builds equal fresh ones; sameKind and diff match the writes', () => {
    const rnd = prng(7);
    const { plugins } = makeRegistry();
    const config = new Config(plugins);
    for (let i = 0; i < 40; i++) config.put('routes', `r${i}`, { uri: `/r${i}`, upstream: upstream(9000 + i) });
    config.put('upstreams', 'u', upstream(9100));
    let prev = config.snapshot();
    for (let step = 0; step < 120; step++) {
      const touched = new Set<string>();
      const n = 1 + Math.floor(rnd() * 3);
      for (let k = 0; k < n; k++) {
        const id = `r${Math.floor(rnd() * 50)}`;
        touched.add(id);
        const r = rnd();
        if (r < 0.25) config.delete('routes', id);
        else if (r < 0.35) config.put('routes', id, { uri: 42 as unknown as string });
        else config.put('routes', id, { uri: `/r${id}/${step}`, upstream: upstream(9000 + step) });
      }
      const next = config.snapshot();
      const fresh = buildSnapshot(config.all(), config.revision, { plugins, compileVars: checkExpr });
      expect(view(next)).toEqual(view(fresh));
      for (const id of touched) expect(next.get('routes', id)?.value).toEqual(fresh.get('routes', id)?.value);
      for (const r of fresh.list('routes')) expect(next.get('routes', r.item.id)?.value).toEqual(r.value);
      expect(next.sameKind('upstreams', prev)).toBe(true);
      const { changed, removed } = next.diff('routes', prev);
      if (next.sameKind('routes', prev)) expect(changed.length + removed.length).toBe(0);
      if (changed.length > 0) expect(next.sameKind('routes', prev)).toBe(false);
      const reported = new Set([...changed.map((c) => c.item.id), ...removed]);
      for (const id of reported) expect(touched.has(id)).toBe(true);
      for (const id of touched) {
        const before = prev.get('routes', id);
        const after = next.get('routes', id);
        if (after !== undefined) expect(changed).toContain(after);
        else if (before !== undefined) expect(removed).toContain(id);
      }
      prev = next;
    }
  });
});
