// The HTTP route matcher, with APISIX `radixtree_host_uri` semantics (lua-resty-radixtree underneath):
// 1. Hosts: routes with hosts (their own, else their service's) are tried before host-less routes. For the
//    request host, the exact-host routes are tried first, then wildcard-host routes from the longest
//    suffix down, then the host-less routes. A route with several hosts sits under each of them.
// 2. URIs, within one host group: the exact-path routes of the request path first; then the routes whose
//    prefix key (the URI up to its first `:` or `*`) is a prefix of the path, longest key first.
// 3. Among routes under the same exact path or key: higher `priority` first, then the longer URI as written,
//    then insertion order. `priority` therefore only orders routes competing for the same path or key.
// 4. A candidate must pass its URI pattern, methods, remote_addrs and vars, else the next one is tried.
// Unlike lua-resty-radixtree, `:param` captures are taken before `vars` run, so `uri_param_<name>` works
// inside the route's own vars (the router sets `input.params` before evaluating them).
// Bad specs (invalid vars, CIDR, host, method, empty uris) are skipped and reported through `errors` and the
// optional `onError` callback; buildRouter itself only throws on programming errors.
import type { Vars } from './vars.ts';
import { compileExpr, evalExpr, isAlwaysTrue, ExprError } from './expr.ts';
import type { CompiledExpr } from './expr.ts';
import { IpMatcher } from './cidr.ts';
import { HostTable, isValidHostPattern } from './host.ts';
import { PathPattern, EXACT, PATTERN } from './path.ts';
import { RadixTree } from './radix.ts';

export interface RouteSpec<T> {
  id: string;
  uris: string[];
  methods?: string[];
  /** The route's host(s), else its service's hosts; empty or absent means any host. */
  hosts?: string[];
  remoteAddrs?: string[];
  /** The raw `vars` array. */
  vars?: unknown;
  priority: number;
  payload: T;
}

export interface MatchInput {
  method: string;
  /** Lower-case, without port. */
  host: string;
  path: string;
  remoteAddr: string;
  vars: Vars;
  /** Set by the router to the candidate route's captures before its vars run (for `uri_param_<name>`). */
  params: Record<string, string> | null;
}

export interface RouteMatch<T> {
  payload: T;
  params: Record<string, string> | null;
  routeId: string;
}

export interface Router<T> {
  /** hot path; never throws (unless a Vars implementation does). */
  match(input: MatchInput): RouteMatch<T> | null;
  readonly size: number;
}

export interface RouteBuildError {
  readonly id: string;
  readonly message: string;
}

export interface BuiltRouter<T> extends Router<T> {
  /** The specs that were skipped, with why. */
  readonly errors: readonly RouteBuildError[];
}

export interface BuildRouterOptions {
  onError?: (id: string, message: string) => void;
}

/** The methods of APISIX's schema, as bits of a route's method mask. */
export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE'];
const METHOD_BITS = new Map<string, number>(HTTP_METHODS.map((m, i) => [m, 1 << i]));

class CompiledRoute<T> {
  readonly id: string;
  readonly payload: T;
  readonly priority: number;
  /** 0 means any method. */
  readonly methodMask: number;
  readonly ips: IpMatcher | null;
  readonly expr: CompiledExpr | null;
  constructor(spec: RouteSpec<T>, methodMask: number, ips: IpMatcher | null, expr: CompiledExpr | null) {
    this.id = spec.id;
    this.payload = spec.payload;
    this.priority = spec.priority;
    this.methodMask = methodMask;
    this.ips = ips;
    this.expr = expr;
  }
}

/** One URI of one route; the route's constraints are copied in so a lookup touches one object. */
class Entry<T> {
  readonly route: CompiledRoute<T>;
  readonly pattern: PathPattern;
  readonly seq: number;
  readonly kind: number;
  readonly methodMask: number;
  readonly ips: IpMatcher | null;
  readonly expr: CompiledExpr | null;
  readonly payload: T;
  readonly routeId: string;
  constructor(route: CompiledRoute<T>, pattern: PathPattern, seq: number) {
    this.route = route;
    this.pattern = pattern;
    this.seq = seq;
    this.kind = pattern.kind;
    this.methodMask = route.methodMask;
    this.ips = route.ips;
    this.expr = route.expr;
    this.payload = route.payload;
    this.routeId = route.id;
  }
}

function byPrecedence<T>(a: Entry<T>, b: Entry<T>): number {
  return (
    b.route.priority - a.route.priority || b.pattern.source.length - a.pattern.source.length || a.seq - b.seq
  );
}

/** The routes of one host group, indexed by URI. */
class UriTable<T> {
  readonly exact = new Map<string, Entry<T>[]>();
  readonly prefixes = new RadixTree<Entry<T>[]>();
  private readonly lists: Entry<T>[][] = [];

  add(entry: Entry<T>): void {
    const p = entry.pattern;
    let list: Entry<T>[];
    if (p.kind === EXACT) {
      list = this.exact.get(p.key) ?? [];
      if (list.length === 0) this.exact.set(p.key, list);
    } else {
      list = this.prefixes.upsert(p.key, () => []);
    }
    if (list.length === 0) this.lists.push(list);
    list.push(entry);
  }

  seal(): void {
    for (const list of this.lists) list.sort(byPrecedence);
  }
}

function compileSpec<T>(spec: RouteSpec<T>): CompiledRoute<T> {
  if (!Array.isArray(spec.uris) || spec.uris.length === 0) throw new Error('route has no uri');
  for (const uri of spec.uris) {
    if (typeof uri !== 'string' || uri.length === 0) throw new Error(`invalid uri '${String(uri)}'`);
  }
  let mask = 0;
  for (const m of spec.methods ?? []) {
    const bit = METHOD_BITS.get(m);
    if (bit === undefined) throw new Error(`invalid method '${m}'`);
    mask |= bit;
  }
  for (const h of spec.hosts ?? []) {
    if (typeof h !== 'string' || !isValidHostPattern(h)) throw new Error(`invalid host '${String(h)}'`);
  }
  let ips: IpMatcher | null = null;
  if (spec.remoteAddrs !== undefined && spec.remoteAddrs.length > 0) ips = IpMatcher.compile(spec.remoteAddrs);
  let expr: CompiledExpr | null = null;
  if (spec.vars !== undefined && spec.vars !== null) {
    try {
      expr = compileExpr(spec.vars);
    } catch (err) {
      if (err instanceof ExprError) throw new Error(`failed to validate the 'vars' expression: ${err.message}`);
      throw err;
    }
    if (isAlwaysTrue(expr)) expr = null;
  }
  return new CompiledRoute(spec, mask, ips, expr);
}

class RadixRouter<T> implements BuiltRouter<T> {
  readonly size: number;
  readonly errors: readonly RouteBuildError[];
  private readonly hosts: HostTable<UriTable<T>>;
  private readonly hasHosts: boolean;
  private readonly anyHost: UriTable<T>;
  /** Scratch buffers reused by every lookup (lookups are synchronous, so never shared concurrently). */
  private readonly hostScratch: UriTable<T>[] = [];
  private readonly keyScratch: Entry<T>[][] = [];

  constructor(specs: readonly RouteSpec<T>[], opts: BuildRouterOptions) {
    const errors: RouteBuildError[] = [];
    const hosts = new HostTable<UriTable<T>>();
    const anyHost = new UriTable<T>();
    const tables: UriTable<T>[] = [anyHost];
    let size = 0;
    let seq = 0;
    for (const spec of specs) {
      let route: CompiledRoute<T>;
      try {
        route = compileSpec(spec);
      } catch (err) {
        const message = (err as Error).message;
        errors.push({ id: spec.id, message });
        opts.onError?.(spec.id, message);
        continue;
      }
      size++;
      const patterns = spec.uris.map((uri) => new PathPattern(uri));
      const targets =
        spec.hosts !== undefined && spec.hosts.length > 0
          ? spec.hosts.map((h) =>
              hosts.upsert(h, () => {
                const t = new UriTable<T>();
                tables.push(t);
                return t;
              }),
            )
          : [anyHost];
      for (const table of new Set(targets)) {
        for (const pattern of patterns) table.add(new Entry(route, pattern, seq++));
      }
    }
    for (const t of tables) t.seal();
    this.size = size;
    this.errors = errors;
    this.hosts = hosts;
    this.hasHosts = hosts.size > 0;
    this.anyHost = anyHost;
  }

  match(input: MatchInput): RouteMatch<T> | null {
    // hot path
    if (this.hasHosts) {
      const host = input.host;
      const exact = this.hosts.getExact(host);
      if (exact !== undefined) {
        const hit = this.matchTable(exact, input);
        if (hit !== null) return hit;
      }
      const stack = this.hostScratch;
      for (let k = this.hosts.collectWildcards(host, stack) - 1; k >= 0; k--) {
        const hit = this.matchTable(stack[k], input);
        if (hit !== null) return hit;
      }
    }
    const hit = this.matchTable(this.anyHost, input);
    if (hit === null) input.params = null;
    return hit;
  }

  private matchTable(table: UriTable<T>, input: MatchInput): RouteMatch<T> | null {
    // hot path
    const path = input.path;
    const exact = table.exact.get(path);
    if (exact !== undefined) {
      for (let i = 0; i < exact.length; i++) {
        const hit = this.tryEntry(exact[i], input);
        if (hit !== null) return hit;
      }
    }
    const stack = this.keyScratch;
    for (let k = table.prefixes.collect(path, stack) - 1; k >= 0; k--) {
      const list = stack[k];
      for (let i = 0; i < list.length; i++) {
        const hit = this.tryEntry(list[i], input);
        if (hit !== null) return hit;
      }
    }
    return null;
  }

  private tryEntry(entry: Entry<T>, input: MatchInput): RouteMatch<T> | null {
    // hot path
    const mask = entry.methodMask;
    if (mask !== 0) {
      const bit = METHOD_BITS.get(input.method);
      if (bit === undefined || (mask & bit) === 0) return null;
    }
    if (entry.ips !== null && !entry.ips.match(input.remoteAddr)) return null;
    let params: Record<string, string> | null = null;
    if (entry.kind === PATTERN) {
      const pattern = entry.pattern;
      if (!pattern.match(input.path)) return null;
      params = pattern.params(input.path);
    }
    if (entry.expr !== null) {
      input.params = params;
      if (!evalExpr(entry.expr, input.vars)) return null;
    }
    input.params = params;
    return { payload: entry.payload, params, routeId: entry.routeId };
  }
}

/** Builds an immutable router from enabled routes (status 0 routes are filtered out by the caller). */
export function buildRouter<T>(routes: readonly RouteSpec<T>[], opts: BuildRouterOptions = {}): BuiltRouter<T> {
  return new RadixRouter(routes, opts);
}
