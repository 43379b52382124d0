// The persistent router: a router reached through update() answers every request like a router built from
// scratch with the same routes, and the router it was updated from keeps answering as before.
import { describe, expect, it } from 'vitest';
import { buildRouter } from '../../src/router/router.ts';
import type { BuiltRouter, MatchInput, RouteSpec } from '../../src/router/router.ts';
import { MapVars } from '../../src/router/vars.ts';

/** Deterministic PRNG (mulberry32). */
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

const SEGMENTS = ['a', 'b', 'api', 'v1', 'users', 'x'];
const HOSTS = ['a.example.com', 'b.example.com', '*.example.com', '*.a.example.com', '*', 'A.Example.com'];
const METHODS = ['GET', 'POST', 'PUT'];

function pick<T>(rnd: () => number, list: readonly T[]): T {
  return list[Math.floor(rnd() * list.length)]!;
}

function randomUri(rnd: () => number): string {
  const depth = 1 + Math.floor(rnd() * 3);
  const parts: string[] = [];
  for (let i = 0; i < depth; i++) parts.push(pick(rnd, SEGMENTS));
  const tail = rnd();
  if (tail < 0.2) parts.push(':id');
  else if (tail < 0.35) parts.push('*');
  else if (tail < 0.45) parts.push('*rest');
  else if (tail < 0.5) return `/${parts.join('/')}*`;
  return `/${parts.join('/')}`;
}

function randomSpec(rnd: () => number, id: string, version: number): RouteSpec<string> {
  const uris = [randomUri(rnd)];
  if (rnd() < 0.2) uris.push(randomUri(rnd));
  const spec: RouteSpec<string> = { id, uris, priority: rnd() < 0.2 ? 1 : 0, payload: `${id}@${version}` };
  if (rnd() < 0.4) spec.hosts = rnd() < 0.2 ? [pick(rnd, HOSTS), pick(rnd, HOSTS)] : [pick(rnd, HOSTS)];
  if (rnd() < 0.3) spec.methods = [pick(rnd, METHODS)];
  if (rnd() < 0.1) spec.remoteAddrs = ['10.0.0.0/8'];
  if (rnd() < 0.1) spec.vars = [['arg_k', '==', 'v']];
  if (rnd() < 0.03) spec.methods = ['FETCH'];
  return spec;
}

function probes(rnd: () => number, count: number): MatchInput[] {
  const out: MatchInput[] = [];
  for (let i = 0; i < count; i++) {
    const depth = 1 + Math.floor(rnd() * 4);
    const parts: string[] = [];
    for (let d = 0; d < depth; d++) parts.push(rnd() < 0.8 ? pick(rnd, SEGMENTS) : String(d));
    out.push({
      method: pick(rnd, METHODS),
      host: pick(rnd, ['a.example.com', 'b.example.com', 'z.a.example.com', 'c.example.com', 'other.org']),
      path: `/${parts.join('/')}`,
      remoteAddr: rnd() < 0.5 ? '10.1.2.3' : '192.168.1.1',
      vars: new MapVars(rnd() < 0.5 ? { arg_k: 'v' } : {}),
      params: null,
    });
  }
  return out;
}

type Answer = [string, Record<string, string> | null, string] | null;

function answers(router: BuiltRouter<string>, inputs: readonly MatchInput[]): Answer[] {
  return inputs.map((input) => {
    const m = router.match(input);
    return m === null ? null : [m.routeId, m.params, m.payload];
  });
}

function byId(specs: Map<string, RouteSpec<string>>): RouteSpec<string>[] {
  return [...specs.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function errorIds(router: BuiltRouter<string>): string[] {
  return router.errors.map((e) => e.id).sort();
}

describe('router update()', () => {
  it('matches a fresh build over randomized changes, and old routers keep their answers', () => {
    const rnd = prng(20240611);
    const inputs = probes(rnd, 400);
    const current = new Map<string, RouteSpec<string>>();
    for (let i = 0; i < 60; i++) current.set(`r${i}`, randomSpec(rnd, `r${i}`, 0));
    let router = buildRouter(byId(current), { order: 'id' });
    let nextId = 60;
    for (let step = 1; step <= 150; step++) {
      const before = router;
      const beforeAnswers = answers(before, inputs);
      const remove: string[] = [];
      const upsert: RouteSpec<string>[] = [];
      const ids = [...current.keys()];
      const changes = 1 + Math.floor(rnd() * 4);
      for (let c = 0; c < changes; c++) {
        const r = rnd();
        if (r < 0.3 && ids.length > 0) {
          const id = pick(rnd, ids);
          remove.push(id);
          current.delete(id);
        } else if (r < 0.7 && ids.length > 0) {
          const id = pick(rnd, ids);
          const spec = randomSpec(rnd, id, step);
          upsert.push(spec);
          current.set(id, spec);
        } else {
          const id = `r${nextId++}`;
          const spec = randomSpec(rnd, id, step);
          upsert.push(spec);
          current.set(id, spec);
        }
      }
      router = before.update({ remove, upsert });
      const fresh = buildRouter(byId(current), { order: 'id' });
      expect(router.size).toBe(fresh.size);
      expect(errorIds(router)).toEqual(errorIds(fresh));
      expect(answers(router, inputs)).toEqual(answers(fresh, inputs));
      expect(answers(before, inputs)).toEqual(beforeAnswers);
    }
    expect(router.size).toBeGreaterThan(20);
  });

  it('empties and refills host groups and radix keys', () => {
    const spec = (id: string, uri: string, hosts?: string[]): RouteSpec<string> => ({ id, uris: [uri], hosts, priority: 0, payload: id });
    const input = (path: string, host = 'a.example.com'): MatchInput => ({
      method: 'GET', host, path, remoteAddr: '127.0.0.1', vars: new MapVars({}), params: null,
    });
    const r0 = buildRouter([spec('h', '/p/*', ['*.example.com']), spec('e', '/x', ['a.example.com']), spec('any', '/p/*')], { order: 'id' });
    expect(r0.match(input('/p/1'))?.routeId).toBe('h');
    const r1 = r0.update({ remove: ['h', 'e'] });
    expect(r1.match(input('/p/1'))?.routeId).toBe('any');
    expect(r1.match(input('/x'))).toBeNull();
    const r2 = r1.update({ remove: ['any'], upsert: [spec('e', '/x', ['a.example.com'])] });
    expect(r2.size).toBe(1);
    expect(r2.match(input('/p/1'))).toBeNull();
    expect(r2.match(input('/x'))?.routeId).toBe('e');
    expect(r2.match(input('/x', 'b.example.com'))).toBeNull();
    expect(r0.match(input('/p/1'))?.routeId).toBe('h');
    expect(r1.size).toBe(1);
  });

  it("in 'list' order, added routes come last and replaced ones keep their place", () => {
    const spec = (id: string, payload: string): RouteSpec<string> => ({ id, uris: ['/same'], priority: 0, payload });
    const input: MatchInput = { method: 'GET', host: 'h', path: '/same', remoteAddr: '127.0.0.1', vars: new MapVars({}), params: null };
    const r0 = buildRouter([spec('z', 'z0'), spec('a', 'a0')]);
    expect(r0.match(input)?.routeId).toBe('z');
    const r1 = r0.update({ upsert: [spec('b', 'b1'), spec('z', 'z1')] });
    expect(r1.match(input)?.payload).toBe('z1');
    const r2 = r1.update({ remove: ['z'] });
    expect(r2.match(input)?.routeId).toBe('a');
    const r3 = r2.update({ upsert: [spec('z', 'z3')] });
    expect(r3.match(input)?.routeId).toBe('a');
  });

  it('a bad spec replacing a good one removes it and is reported; fixing it clears the error', () => {
    const errors: string[] = [];
    const input: MatchInput = { method: 'GET', host: 'h', path: '/a', remoteAddr: '127.0.0.1', vars: new MapVars({}), params: null };
    const r0 = buildRouter([{ id: 'r', uris: ['/a'], priority: 0, payload: 'ok' }], { onError: (id) => errors.push(id) });
    const r1 = r0.update({ upsert: [{ id: 'r', uris: ['/a'], methods: ['FETCH'], priority: 0, payload: 'bad' }] });
    expect(r1.match(input)).toBeNull();
    expect(r1.errors.map((e) => e.id)).toEqual(['r']);
    expect(errors).toEqual(['r']);
    const r2 = r1.update({ upsert: [{ id: 'r', uris: ['/a'], priority: 0, payload: 'fixed' }] });
    expect(r2.match(input)?.payload).toBe('fixed');
    expect(r2.errors).toEqual([]);
  });
});
