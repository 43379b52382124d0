// The set of upstream runtimes of one config snapshot. Building a new cache from the previous one reuses
// every runtime whose conf JSON is unchanged (keeping balancer state and DNS watches), closes the others, and
// retires connection pools no live endpoint uses any more.
import type { JsonObject } from '../config/resources.ts';
import { ChunkedMap } from '../router/chunked-map.ts';
import { Edit } from '../router/radix.ts';
import type { BalancerRegistry, HealthView } from './balancer.ts';
import type { DnsCache } from './dns.ts';
import type { Pools } from './pools.ts';
import { UpstreamRuntime } from './upstream.ts';

export interface UpstreamCacheDeps {
  readonly registry: BalancerRegistry;
  readonly pools?: Pools | null;
  readonly dns?: DnsCache | null;
  /** The health view of an upstream (default: all healthy). */
  readonly health?: (key: string, conf: JsonObject) => HealthView;
  readonly clientCert?: (id: string) => { cert: string; key: string } | undefined;
}

/** Shared by successive caches so DNS-driven endpoint changes sweep pools against the newest cache. */
class Sweeper {
  current: UpstreamCache | null = null;
  readonly pools: Pools | null;
  constructor(pools: Pools | null) {
    this.pools = pools;
  }
  sweep(): void {
    const cache = this.current;
    if (!this.pools || !cache) return;
    const live = new Set<string>();
    for (const u of cache.values()) for (const e of u.endpoints) live.add(this.pools.liveKey(u, e));
    this.pools.retain(live);
  }
}

/** Unchanged snapshot items keep their (frozen) conf objects: identity spares the JSON comparison. */
function unchanged(old: UpstreamRuntime, conf: JsonObject): boolean {
  return old.conf === conf || old.confJson === JSON.stringify(conf);
}

function create(key: string, conf: JsonObject, deps: UpstreamCacheDeps, sweeper: Sweeper): UpstreamRuntime {
  return new UpstreamRuntime({
    key,
    conf,
    registry: deps.registry,
    health: deps.health?.(key, conf),
    pools: deps.pools ?? null,
    dns: deps.dns ?? null,
    clientCert: deps.clientCert,
    onEndpointsChanged: () => sweeper.sweep(),
  });
}

export class UpstreamCache {
  /** Persistent, so patch() shares the untouched part with the previous cache. */
  private readonly runtimes: ChunkedMap<UpstreamRuntime>;
  /** Upstreams that could not be built, by key, with the reason. */
  readonly errors: ReadonlyMap<string, string>;
  private readonly sweeper: Sweeper;

  private constructor(runtimes: ChunkedMap<UpstreamRuntime>, errors: Map<string, string>, sweeper: Sweeper) {
    this.runtimes = runtimes;
    this.errors = errors;
    this.sweeper = sweeper;
  }

  /**
   * Builds the cache for `confs` (key -> upstream conf with defaults), reusing unchanged runtimes of `prev`.
   * Waits for the first DNS answers of new hostname nodes. The previous cache must not be used afterwards
   * except by requests already in flight.
   */
  static async build(
    prev: UpstreamCache | null,
    confs: Iterable<readonly [string, JsonObject]>,
    deps: UpstreamCacheDeps,
  ): Promise<UpstreamCache> {
    const { cache, fresh } = UpstreamCache.assemble(prev, confs, deps);
    await Promise.all(fresh.map((u) => u.ready()));
    return UpstreamCache.activate(prev, cache);
  }

  /**
   * Like build() but synchronous: hostname nodes of new upstreams join their balancer when the first DNS
   * answer arrives (until then such an upstream may pick 'no_nodes').
   */
  static buildSync(prev: UpstreamCache | null, confs: Iterable<readonly [string, JsonObject]>, deps: UpstreamCacheDeps): UpstreamCache {
    return UpstreamCache.activate(prev, UpstreamCache.assemble(prev, confs, deps).cache);
  }

  private static assemble(
    prev: UpstreamCache | null,
    confs: Iterable<readonly [string, JsonObject]>,
    deps: UpstreamCacheDeps,
  ): { cache: UpstreamCache; fresh: UpstreamRuntime[] } {
    const sweeper = prev?.sweeper ?? new Sweeper(deps.pools ?? null);
    const edit = new Edit(true);
    const runtimes = new ChunkedMap<UpstreamRuntime>();
    const errors = new Map<string, string>();
    const fresh: UpstreamRuntime[] = [];
    for (const [key, conf] of confs) {
      const old = prev?.runtimes.get(key);
      if (old && unchanged(old, conf)) {
        runtimes.set(key, old, edit);
        continue;
      }
      try {
        const u = create(key, conf, deps, sweeper);
        runtimes.set(key, u, edit);
        fresh.push(u);
      } catch (err) {
        errors.set(key, err instanceof Error ? err.message : String(err));
      }
    }
    return { cache: new UpstreamCache(runtimes, errors, sweeper), fresh };
  }

  /**
   * A cache equal to `prev` with some keys replaced (conf) or removed (null): the other runtimes are taken
   * over without looking at them, so a change costs in proportion to `changes`. Like buildSync otherwise.
   */
  static patch(prev: UpstreamCache, changes: Iterable<readonly [string, JsonObject | null]>, deps: UpstreamCacheDeps): UpstreamCache {
    const edit = new Edit(false);
    const runtimes = prev.runtimes.copy();
    const errors = new Map(prev.errors);
    const replaced: UpstreamRuntime[] = [];
    for (const [key, conf] of changes) {
      const old = prev.runtimes.get(key);
      errors.delete(key);
      if (old && conf !== null && unchanged(old, conf)) continue;
      if (old) replaced.push(old);
      runtimes.delete(key, edit);
      if (conf === null) continue;
      try {
        runtimes.set(key, create(key, conf, deps, prev.sweeper), edit);
      } catch (err) {
        errors.set(key, err instanceof Error ? err.message : String(err));
      }
    }
    const cache = new UpstreamCache(runtimes, errors, prev.sweeper);
    for (const u of replaced) u.close();
    cache.sweeper.current = cache;
    if (replaced.length > 0) cache.sweeper.sweep();
    return cache;
  }

  private static activate(prev: UpstreamCache | null, cache: UpstreamCache): UpstreamCache {
    let closed = prev === null;
    if (prev) {
      for (const [key, u] of prev.runtimes.entries()) {
        if (cache.runtimes.get(key) === u) continue;
        u.close();
        closed = true;
      }
    }
    cache.sweeper.current = cache;
    // Only a closed runtime can leave a pool unused.
    if (closed) cache.sweeper.sweep();
    return cache;
  }

  get(key: string): UpstreamRuntime | undefined {
    return this.runtimes.get(key);
  }

  values(): IterableIterator<UpstreamRuntime> {
    return this.runtimes.values();
  }

  get size(): number {
    return this.runtimes.size;
  }

  /** Stops every runtime's DNS refreshes (shutdown). Pools are closed by their owner. */
  close(): void {
    for (const u of this.runtimes.values()) u.close();
    if (this.sweeper.current === this) this.sweeper.current = null;
  }
}
