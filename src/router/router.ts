// The HTTP route matcher, with APISIX `radixtree_host_uri` semantics (lua-resty-radixtree underneath):
// 1. Hosts: routes with hosts (their own, else their service's) are tried before host-less routes. For the
//    request host, the exact-host routes are tried first, then wildcard-host routes from the longest
//    suffix down, then the host-less routes. A route with several hosts sits under each of them.
// 2. URIs, within one host group: the exact-path routes of the request path first; then the routes whose
//    prefix key (the URI up to its first `:` or `*`) is a prefix of the path, longest key first.
// 3. Among routes under the same exact path or key: higher `priority` first, then the longer URI as written,
//    then the route order (see BuildRouterOptions.order), then the order of the route's own uris.
// 4. A candidate must pass its URI pattern, methods, remote_addrs and vars, else the next one is tried.
// Unlike lua-resty-radixtree, `:param` captures are taken before `vars` run, so `uri_param_<name>` works
// inside the route's own vars (the router sets `input.params` before evaluating them).
// Bad specs (invalid vars, CIDR, host, method, empty uris) are skipped and reported through `errors` and the
// optional `onError` callback; buildRouter itself only throws on programming errors.
//
// Routers are persistent: `update()` returns a new router with some routes added, replaced or removed,
// sharing every untouched host group, URI list and radix subtree with the old one (which keeps answering
// as before), so a config change costs in proportion to what changed rather than to the number of routes.
import type { Vars } from './vars.ts';
import { compileExpr, evalExpr, isAlwaysTrue, ExprError } from './expr.ts';
import type { CompiledExpr } from './expr.ts';
import { IpMatcher } from './cidr.ts';
import { HostTable, isValidHostPattern, normalizeHostPattern } from './host.ts';
import { PathPattern, EXACT, PATTERN } from './path.ts';
import { ChunkedMap } from './chunked-map.ts';
import { Edit, RadixTree } from './radix.ts';

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
  /** The route URI and host pattern that matched, as written (APISIX matched_uri / matched_host). */
  uri: string;
  host: string | null;
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

/** Changes applied by `BuiltRouter.update`: removals first, then upserts (by route id). */
export interface RouteChanges<T> {
  readonly remove?: Iterable<string>;
  /** New routes, or replacements of routes with the same id. */
  readonly upsert?: Iterable<RouteSpec<T>>;
}

export interface BuiltRouter<T> extends Router<T> {
  /** The specs that were skipped, with why. */
  readonly errors: readonly RouteBuildError[];
  /**
   * A new router with `changes` applied; this one is left as it was and both stay usable. Bad specs are
   * reported through the onError given to buildRouter.
   */
  update(changes: RouteChanges<T>): BuiltRouter<T>;
}

export interface BuildRouterOptions {
  onError?: (id: string, message: string) => void;
  /**
   * The route order breaking ties in rule 3. 'list' (default): the order of the specs given to buildRouter;
   * routes added by update() come after every existing one, a replaced route keeps its place. 'id': route
   * id string order (the order of a config snapshot), the same however the router was reached.
   */
  order?: 'list' | 'id';
}

/** The methods of APISIX's schema, as bits of a route's method mask. */
export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE'];
const METHOD_BITS = new Map<string, number>(HTTP_METHODS.map((m, i) => [m, 1 << i]));

class CompiledRoute<T> {
  readonly id: string;
  readonly payload: T;
  readonly priority: number;
  /** Tie-break after priority and URI length: a number ('list' order) or the id ('id' order). */
  readonly order: number | string;
  /** 0 means any method. */
  readonly methodMask: number;
  readonly ips: IpMatcher | null;
  readonly expr: CompiledExpr | null;
  /** Normalized distinct host patterns; empty means the host-less group. */
  readonly hostKeys: readonly string[];
  readonly patterns: readonly PathPattern[];
  constructor(
    spec: RouteSpec<T>,
    order: number | string,
    methodMask: number,
    ips: IpMatcher | null,
    expr: CompiledExpr | null,
    hostKeys: readonly string[],
  ) {
    this.id = spec.id;
    this.payload = spec.payload;
    this.priority = spec.priority;
    this.order = order;
    this.methodMask = methodMask;
    this.ips = ips;
    this.expr = expr;
    this.hostKeys = hostKeys;
    this.patterns = spec.uris.map((uri) => new PathPattern(uri));
  }
}

/** One URI of one route; the route's constraints are copied in so a lookup touches one object. */
class Entry<T> {
  readonly route: CompiledRoute<T>;
  readonly pattern: PathPattern;
  /** Position of the URI in the route's uris. */
  readonly uriIndex: number;
  readonly kind: number;
  readonly methodMask: number;
  readonly ips: IpMatcher | null;
  readonly expr: CompiledExpr | null;
  readonly payload: T;
  readonly routeId: string;
  constructor(route: CompiledRoute<T>, pattern: PathPattern, uriIndex: number) {
    this.route = route;
    this.pattern = pattern;
    this.uriIndex = uriIndex;
    this.kind = pattern.kind;
    this.methodMask = route.methodMask;
    this.ips = route.ips;
    this.expr = route.expr;
    this.payload = route.payload;
    this.routeId = route.id;
  }
}

function byPrecedence<T>(a: Entry<T>, b: Entry<T>): number {
  const d = b.route.priority - a.route.priority || b.pattern.source.length - a.pattern.source.length;
  if (d !== 0) return d;
  const ao = a.route.order;
  const bo = b.route.order;
  if (ao !== bo) return ao < bo ? -1 : 1;
  return a.uriIndex - b.uriIndex;
}

/** The routes of one host group, indexed by URI. Lists are sorted by precedence once an update commits. */
class UriTable<T> {
  /** The normalized host pattern of the group; null for the host-less group. */
  readonly host: string | null;
  exact = new ChunkedMap<Entry<T>[]>();
  prefixes = new RadixTree<Entry<T>[]>();
  constructor(host: string | null) {
    this.host = host;
  }

  copy(): UriTable<T> {
    const t = new UriTable<T>(this.host);
    t.exact = this.exact;
    t.prefixes = this.prefixes;
    return t;
  }

  get empty(): boolean {
    return this.exact.size === 0 && this.prefixes.size === 0;
  }
}

function compileSpec<T>(spec: RouteSpec<T>, order: number | string): CompiledRoute<T> {
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
  const hostKeys: string[] = [];
  for (const h of spec.hosts ?? []) {
    if (typeof h !== 'string' || !isValidHostPattern(h)) throw new Error(`invalid host '${String(h)}'`);
    const key = normalizeHostPattern(h);
    if (!hostKeys.includes(key)) hostKeys.push(key);
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
  return new CompiledRoute(spec, order, mask, ips, expr, hostKeys);
}

/** Everything a router reads; shared between routers until an update copies the parts it changes. */
interface RouterState<T> {
  routes: ChunkedMap<CompiledRoute<T>>;
  errors: Map<string, string>;
  hosts: HostTable<UriTable<T>>;
  anyHost: UriTable<T>;
  nextOrder: number;
  readonly opts: BuildRouterOptions;
}

/** One batch of changes: copies what it touches of `base`, then sorts the URI lists it changed. */
class RouterEdit<T> {
  private readonly edit: Edit;
  private readonly state: RouterState<T>;
  private readonly dirty = new Map<Entry<T>[], { table: UriTable<T>; pattern: PathPattern }>();
  private readonly touched = new Set<UriTable<T>>();

  constructor(base: RouterState<T> | null, opts: BuildRouterOptions) {
    this.edit = new Edit(base === null);
    this.state =
      base === null
        ? { routes: new ChunkedMap(), errors: new Map(), hosts: new HostTable(), anyHost: new UriTable(null), nextOrder: 0, opts }
        : { ...base, hosts: base.hosts.copy() };
  }

  private routes(): ChunkedMap<CompiledRoute<T>> {
    const s = this.state;
    if (!this.edit.owns(s.routes)) s.routes = this.edit.own(s.routes.copy());
    return s.routes;
  }

  private errors(): Map<string, string> {
    const s = this.state;
    if (!this.edit.owns(s.errors)) s.errors = this.edit.own(new Map(s.errors));
    return s.errors;
  }

  /** The owned table of a host group (null: host-less), created when `create`. */
  private table(host: string | null, create: boolean): UriTable<T> | undefined {
    const s = this.state;
    const edit = this.edit;
    let t: UriTable<T> | undefined;
    if (host === null) {
      if (!edit.owns(s.anyHost)) s.anyHost = edit.own(s.anyHost.copy());
      t = s.anyHost;
    } else {
      t = s.hosts.get(host);
      if (t === undefined) {
        if (!create) return undefined;
        t = edit.own(new UriTable<T>(host));
        s.hosts.set(host, t, edit);
      } else if (!edit.owns(t)) {
        t = edit.own(t.copy());
        s.hosts.set(host, t, edit);
      }
    }
    this.touched.add(t);
    return t;
  }

  /** The owned entry list of `pattern`'s key in `table`, created when `create`. */
  private list(table: UriTable<T>, pattern: PathPattern, create: boolean): Entry<T>[] | undefined {
    const edit = this.edit;
    const key = pattern.key;
    let list: Entry<T>[] | undefined;
    if (pattern.kind === EXACT) {
      list = table.exact.get(key);
      if (list === undefined && !create) return undefined;
      if (list === undefined || !edit.owns(list)) {
        list = edit.own(list === undefined ? [] : list.slice());
        if (!edit.owns(table.exact)) table.exact = edit.own(table.exact.copy());
        table.exact.set(key, list, edit);
      }
    } else {
      list = table.prefixes.get(key);
      if (list === undefined && !create) return undefined;
      if (list === undefined || !edit.owns(list)) {
        list = edit.own(list === undefined ? [] : list.slice());
        if (!edit.owns(table.prefixes)) table.prefixes = edit.own(table.prefixes.copy());
        table.prefixes.set(key, list, edit);
      }
    }
    if (!this.dirty.has(list)) this.dirty.set(list, { table, pattern });
    return list;
  }

  remove(id: string): number | string | undefined {
    const route = this.state.routes.get(id);
    if (route === undefined) {
      if (this.state.errors.has(id)) this.errors().delete(id);
      return undefined;
    }
    const hosts = route.hostKeys.length > 0 ? route.hostKeys : [null];
    for (const host of hosts) {
      const table = this.table(host, false);
      if (table === undefined) continue;
      for (const pattern of route.patterns) {
        const list = this.list(table, pattern, false);
        if (list === undefined) continue;
        let w = 0;
        for (let r = 0; r < list.length; r++) if (list[r]!.route !== route) list[w++] = list[r]!;
        list.length = w;
      }
    }
    this.routes().delete(id, this.edit);
    return route.order;
  }

  add(spec: RouteSpec<T>, kept: number | string | undefined): void {
    const s = this.state;
    const order = s.opts.order === 'id' ? spec.id : typeof kept === 'number' ? kept : s.nextOrder++;
    let route: CompiledRoute<T>;
    try {
      route = compileSpec(spec, order);
    } catch (err) {
      const message = (err as Error).message;
      this.errors().set(spec.id, message);
      s.opts.onError?.(spec.id, message);
      return;
    }
    this.routes().set(spec.id, route, this.edit);
    const hosts = route.hostKeys.length > 0 ? route.hostKeys : [null];
    for (const host of hosts) {
      const table = this.table(host, true) as UriTable<T>;
      for (let i = 0; i < route.patterns.length; i++) {
        const pattern = route.patterns[i]!;
        (this.list(table, pattern, true) as Entry<T>[]).push(new Entry(route, pattern, i));
      }
    }
  }

  commit(): RadixRouter<T> {
    const edit = this.edit;
    for (const [list, { table, pattern }] of this.dirty) {
      if (list.length > 1) list.sort(byPrecedence);
      else if (list.length === 0) {
        if (pattern.kind === EXACT) {
          if (table.exact.get(pattern.key) === list) table.exact.delete(pattern.key, edit);
        } else if (table.prefixes.get(pattern.key) === list) {
          table.prefixes.delete(pattern.key, edit);
        }
      }
    }
    for (const t of this.touched) if (t.host !== null && t.empty) this.state.hosts.delete(t.host, edit);
    return new RadixRouter(this.state);
  }
}

class RadixRouter<T> implements BuiltRouter<T> {
  readonly size: number;
  readonly errors: readonly RouteBuildError[];
  private readonly state: RouterState<T>;
  private readonly hosts: HostTable<UriTable<T>>;
  private readonly hasHosts: boolean;
  private readonly anyHost: UriTable<T>;
  /** Scratch buffers reused by every lookup (lookups are synchronous, so never shared concurrently). */
  private readonly hostScratch: UriTable<T>[] = [];
  private readonly keyScratch: Entry<T>[][] = [];

  constructor(state: RouterState<T>) {
    this.state = state;
    this.size = state.routes.size;
    this.errors = Array.from(state.errors, ([id, message]) => ({ id, message }));
    this.hosts = state.hosts;
    this.hasHosts = state.hosts.size > 0;
    this.anyHost = state.anyHost;
  }

  update(changes: RouteChanges<T>): BuiltRouter<T> {
    const e = new RouterEdit<T>(this.state, this.state.opts);
    for (const id of changes.remove ?? []) e.remove(id);
    for (const spec of changes.upsert ?? []) e.add(spec, e.remove(spec.id));
    return e.commit();
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
        const hit = this.tryEntry(exact[i], input, table.host);
        if (hit !== null) return hit;
      }
    }
    const stack = this.keyScratch;
    for (let k = table.prefixes.collect(path, stack) - 1; k >= 0; k--) {
      const list = stack[k];
      for (let i = 0; i < list.length; i++) {
        const hit = this.tryEntry(list[i], input, table.host);
        if (hit !== null) return hit;
      }
    }
    return null;
  }

  private tryEntry(entry: Entry<T>, input: MatchInput, host: string | null): RouteMatch<T> | null {
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
    return { payload: entry.payload, params, routeId: entry.routeId, uri: entry.pattern.source, host };
  }
}

/** Builds a router from enabled routes (status 0 routes are filtered out by the caller). */
export function buildRouter<T>(routes: readonly RouteSpec<T>[], opts: BuildRouterOptions = {}): BuiltRouter<T> {
  const e = new RouterEdit<T>(null, opts);
  for (const spec of routes) e.add(spec, e.remove(spec.id));
  return e.commit();
}
