// Fuzz target: the HTTP route matcher (src/router/router.ts with path.ts, host.ts, radix.ts).
// Properties: building from any route set never throws (bad specs are reported) and lookups of any
// method/host/path never throw; for exact, prefix and parameter URIs with hosts, methods and priorities the
// result equals a naive reference matcher written here from the documented radixtree_host_uri rules (scan
// every route, no tree); a router reached through update() answers like one built from the final route set.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildRouter, type BuiltRouter, type MatchInput, type RouteSpec } from '../../src/router/router.ts';
import { MapVars } from '../../src/router/vars.ts';
import { params, runs } from './runs.ts';

const SEGMENTS = ['a', 'b', 'ab', '', 'a:b', ':id', ':x', '*', '*rest', 'x*', '..', '%2F', 'é'];
const PATH_SEGMENTS = ['a', 'b', 'ab', '', 'a:b', 'x', '..', '.', '%2F', 'é', 'rest', 'a*'];
const ROUTE_HOSTS = ['a.com', 'A.com', '*.a.com', '*a.com', 'b.a.com', '*', 'c.com', '*.com', 'bad host', '**.a', ''];
const REQ_HOSTS = ['a.com', 'b.a.com', 'x.b.a.com', 'ba.com', 'c.com', 'd.com', '', 'a.com.', '.a.com', 'localhost'];
const METHODS = ['GET', 'POST', 'PUT', 'PURGE'];

const uri = fc.oneof(
  fc.array(fc.constantFrom(...SEGMENTS), { maxLength: 4 }).map((s) => '/' + s.join('/')),
  fc.array(fc.constantFrom(...SEGMENTS), { maxLength: 3 }).map((s) => '/' + s.join('/') + '*'),
  fc.string({ maxLength: 8 }),
);
const spec = fc.record({
  uris: fc.array(uri, { minLength: 1, maxLength: 3 }),
  methods: fc.option(fc.subarray(METHODS, { minLength: 1 }), { nil: undefined }),
  hosts: fc.option(fc.array(fc.constantFrom(...ROUTE_HOSTS), { minLength: 1, maxLength: 2 }), { nil: undefined }),
  priority: fc.integer({ min: -1, max: 1 }),
  /** Some routes require arg_k == "1": a vars filter the reference evaluates too. */
  needsK: fc.boolean(),
});
type Gen = typeof spec extends fc.Arbitrary<infer T> ? T : never;

function toSpec(g: Gen, id: string): RouteSpec<string> {
  return { id, uris: g.uris, methods: g.methods, hosts: g.hosts, priority: g.priority, vars: g.needsK ? [['arg_k', '==', '1']] : undefined, payload: id };
}

const request = fc.record({
  method: fc.constantFrom(...METHODS, 'DELETE', 'get', ''),
  host: fc.oneof(fc.constantFrom(...REQ_HOSTS), fc.string({ maxLength: 6 })),
  path: fc.oneof(
    fc.array(fc.constantFrom(...PATH_SEGMENTS), { maxLength: 5 }).map((s) => '/' + s.join('/')),
    fc.string({ maxLength: 12 }),
    fc.string({ unit: 'binary', maxLength: 8 }),
  ),
  k: fc.constantFrom('1', '0', undefined),
});
type Req = typeof request extends fc.Arbitrary<infer T> ? T : never;

/** Requests aimed at the given routes (their URIs instantiated, their hosts) mixed with random ones. */
function requestsFor(specs: readonly RouteSpec<string>[]): fc.Arbitrary<Req[]> {
  if (specs.length === 0) return fc.array(request, { minLength: 1, maxLength: 10 });
  const aimed = fc
    .tuple(request, fc.nat(), fc.nat(), fc.nat(), fc.constantFrom('', 'z', 'z/y', 'a'), fc.boolean())
    .map(([r, i, j, k, tail, keepHost]) => {
      const s = specs[i % specs.length]!;
      const u = s.uris[j % s.uris.length]!;
      const path = u
        .split('/')
        .map((seg) => (seg.startsWith(':') ? 'v' : seg.startsWith('*') ? tail : seg.endsWith('*') ? seg.slice(0, -1) + tail : seg))
        .join('/');
      const hosts = s.hosts ?? [];
      const host = keepHost && hosts.length > 0 ? hosts[k % hosts.length]!.replace('*', 'w').toLowerCase() : r.host;
      return { ...r, path, host };
    });
  return fc.array(fc.oneof({ weight: 3, arbitrary: aimed }, { weight: 1, arbitrary: request }), { minLength: 1, maxLength: 10 });
}

function input(r: Req): MatchInput {
  return { method: r.method, host: r.host, path: r.path, remoteAddr: '127.0.0.1', vars: new MapVars(r.k === undefined ? {} : { arg_k: r.k }), params: null };
}

// ---- the reference matcher: a linear scan over every route, from the rules in router.ts's header ----

const HOST_SYNTAX = /^\*$|^\*?[0-9a-zA-Z\-._[\]:]+$/;

interface RefUri {
  kind: 'exact' | 'prefix' | 'pattern';
  key: string;
  source: string;
  index: number;
  regex: RegExp | null;
}
interface RefRoute {
  id: string;
  order: number | string;
  priority: number;
  methods: string[] | undefined;
  hosts: string[];
  needsK: boolean;
  uris: RefUri[];
}

function refUri(source: string, index: number): RefUri {
  const cut = source.search(/[:*]/);
  if (cut < 0) return { kind: 'exact', key: source, source, index, regex: null };
  const segs = source.split('/');
  const dyn = segs.map((s) => s.startsWith(':') || s.startsWith('*'));
  const dynCount = dyn.filter(Boolean).length;
  const prefixOnly = dynCount === 0 || (dynCount === 1 && segs[segs.length - 1] === '*');
  if (prefixOnly) return { kind: 'prefix', key: source.slice(0, cut), source, index, regex: null };
  const body = segs
    .map((s) => (s.startsWith(':') ? '[^/]+' : s.startsWith('*') ? '[\\s\\S]*' : s.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&')))
    .join('/');
  return { kind: 'pattern', key: source.slice(0, cut), source, index, regex: new RegExp(`^${body}$`) };
}

function refRoutes(specs: readonly RouteSpec<string>[], order: 'list' | 'id'): RefRoute[] {
  const out: RefRoute[] = [];
  specs.forEach((s, i) => {
    const hosts = s.hosts ?? [];
    if (s.uris.some((u) => u.length === 0) || hosts.some((h) => !HOST_SYNTAX.test(h))) return; // skipped spec
    out.push({
      id: s.id,
      order: order === 'id' ? s.id : i,
      priority: s.priority,
      methods: s.methods,
      hosts: [...new Set(hosts.map((h) => h.toLowerCase()))],
      needsK: s.vars !== undefined,
      uris: s.uris.map(refUri),
    });
  });
  return out;
}

interface Cand {
  route: RefRoute;
  uri: RefUri;
}

function precedence(a: Cand, b: Cand): number {
  const d = b.route.priority - a.route.priority || b.uri.source.length - a.uri.source.length;
  if (d !== 0) return d;
  if (a.route.order !== b.route.order) return a.route.order < b.route.order ? -1 : 1;
  return a.uri.index - b.uri.index;
}

function refMatch(routes: readonly RefRoute[], r: Req): string | null {
  // Host groups in precedence order: exact host, wildcards by longest suffix, then host-less routes.
  const wild = new Set<string>();
  for (const route of routes) for (const h of route.hosts) if (h.startsWith('*') && r.host.endsWith(h.slice(1))) wild.add(h);
  const groups: (string | null)[] = [];
  if (routes.some((route) => route.hosts.includes(r.host))) groups.push(r.host);
  groups.push(...[...wild].sort((x, y) => y.length - x.length), null);
  for (const g of groups) {
    const inGroup = routes.filter((route) => (g === null ? route.hosts.length === 0 : route.hosts.includes(g)));
    const cands: Cand[] = [];
    for (const route of inGroup) for (const u of route.uris) cands.push({ route, uri: u });
    const exact = cands.filter((c) => c.uri.kind === 'exact' && c.uri.key === r.path).sort(precedence);
    const keyed = cands.filter((c) => c.uri.kind !== 'exact' && r.path.startsWith(c.uri.key));
    keyed.sort((x, y) => y.uri.key.length - x.uri.key.length || precedence(x, y));
    for (const c of [...exact, ...keyed]) {
      if (c.route.methods !== undefined && !c.route.methods.includes(r.method)) continue;
      if (c.uri.regex !== null && !c.uri.regex.test(r.path)) continue;
      if (c.route.needsK && r.k !== '1') continue;
      return c.route.id;
    }
  }
  return null;
}

function lookup(router: BuiltRouter<string>, r: Req): string | null {
  const hit = router.match(input(r));
  if (hit !== null) expect(hit.payload).toBe(hit.routeId);
  return hit?.routeId ?? null;
}

const N_ANY = runs(1500);
const N_DIFF = runs(1500);
const N_UPDATE = runs(500);

describe('fuzz: router', () => {
  it(`arbitrary specs build without throwing and lookups never throw (${N_ANY} inputs)`, () => {
    const anySpec = fc.record({
      id: fc.constantFrom('1', '2', '3', '4'),
      uris: fc.array(fc.oneof(uri, fc.string({ unit: 'binary', maxLength: 10 })), { maxLength: 3 }),
      methods: fc.option(fc.array(fc.constantFrom(...METHODS, 'get', 'BREW'), { maxLength: 3 }), { nil: undefined }),
      hosts: fc.option(fc.array(fc.oneof(fc.constantFrom(...ROUTE_HOSTS), fc.string({ maxLength: 6 })), { maxLength: 3 }), { nil: undefined }),
      remoteAddrs: fc.option(fc.array(fc.constantFrom('127.0.0.1', '10.0.0.0/8', '::1', 'nope', '1.2.3.4/40'), { maxLength: 2 }), { nil: undefined }),
      vars: fc.option(fc.jsonValue({ maxDepth: 3 }), { nil: undefined }),
      priority: fc.integer(),
      payload: fc.constant('p'),
    });
    fc.assert(
      fc.property(fc.array(anySpec, { maxLength: 8 }), fc.array(request, { minLength: 1, maxLength: 8 }), fc.constantFrom<'list' | 'id'>('list', 'id'), (specs, reqs, order) => {
        const errors: string[] = [];
        const router = buildRouter(specs as RouteSpec<string>[], { order, onError: (id) => errors.push(id) });
        expect(router.errors.length).toBeLessThanOrEqual(specs.length);
        for (const r of reqs) {
          const inp = input(r);
          inp.remoteAddr = r.k === '1' ? '::1' : 'garbage';
          router.match(inp);
        }
      }),
      params(N_ANY),
    );
  });

  it(`matches like the naive reference matcher (${N_DIFF} inputs)`, () => {
    fc.assert(
      fc.property(fc.array(spec, { maxLength: 10 }).chain((gens) => {
        const specs = gens.map((g, i) => toSpec(g, `r${i}`));
        return fc.tuple(fc.constant(specs), requestsFor(specs));
      }), ([specs, reqs]) => {
        const router = buildRouter(specs);
        const ref = refRoutes(specs, 'list');
        for (const r of reqs) expect(lookup(router, r), JSON.stringify(r)).toBe(refMatch(ref, r));
      }),
      params(N_DIFF),
    );
  });

  it(`a router reached by update() answers like one built from the result (${N_UPDATE} inputs)`, () => {
    const change = fc.oneof(
      fc.record({ op: fc.constant('remove' as const), id: fc.integer({ min: 0, max: 11 }) }),
      fc.record({ op: fc.constant('upsert' as const), id: fc.integer({ min: 0, max: 11 }), spec }),
    );
    fc.assert(
      fc.property(fc.array(spec, { maxLength: 8 }).chain((gens) => fc.tuple(fc.constant(gens), requestsFor(gens.map((g, i) => toSpec(g, `r${i}`))))), fc.array(fc.array(change, { maxLength: 5 }), { maxLength: 3 }), ([gens, reqs], batches) => {
        const current = new Map(gens.map((g, i) => [`r${i}`, toSpec(g, `r${i}`)]));
        let router = buildRouter([...current.values()], { order: 'id' });
        const old = router;
        const oldRef = refRoutes([...current.values()], 'id');
        for (const batch of batches) {
          const remove = batch.filter((c) => c.op === 'remove').map((c) => `r${c.id}`);
          const upsertMap = new Map<string, RouteSpec<string>>();
          for (const c of batch) if (c.op === 'upsert') upsertMap.set(`r${c.id}`, toSpec(c.spec, `r${c.id}`));
          router = router.update({ remove, upsert: upsertMap.values() });
          for (const id of remove) current.delete(id);
          for (const [id, s] of upsertMap) current.set(id, s);
        }
        const fresh = buildRouter([...current.values()], { order: 'id' });
        const ref = refRoutes([...current.values()], 'id');
        for (const r of reqs) {
          const want = refMatch(ref, r);
          expect(lookup(router, r), JSON.stringify(r)).toBe(want);
          expect(lookup(fresh, r)).toBe(want);
          // The original router is persistent: it still answers for the original route set.
          expect(lookup(old, r)).toBe(refMatch(oldRef, r));
        }
      }),
      params(N_UPDATE),
    );
  });
});
