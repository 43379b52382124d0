// Upstream runtimes of one stream runtime. Built synchronously at snapshot time (RuntimeBuilder.build is
// synchronous; hostname nodes resolve in the background through the UpstreamRuntime's DnsCache), reusing
// the previous runtime's UpstreamRuntime for every key whose conf JSON is unchanged, so balancer state
// (least_conn counts, ewma scores, round-robin position) survives config changes.
import type { JsonObject } from '../src/config/resources.ts';
import type { Snapshot } from '../src/config/snapshot.ts';
import type { BalancerRegistry, HealthView } from '../src/upstream/balancer.ts';
import type { DnsCache } from '../src/upstream/dns.ts';
import { UpstreamRuntime } from '../src/upstream/upstream.ts';

export interface StreamUpstreamDeps {
  readonly balancers: BalancerRegistry;
  /** One view for all upstreams, or a view per upstream key. */
  readonly health?: HealthView | ((key: string, conf: JsonObject) => HealthView);
  readonly dns?: DnsCache | null;
}

export class StreamUpstreams {
  private readonly map = new Map<string, UpstreamRuntime>();
  /** Keys that failed to build, with the reason (logged by the runtime builder). */
  readonly errors = new Map<string, string>();
  private readonly snapshot: Snapshot;
  private readonly previous: StreamUpstreams | null;
  private readonly deps: StreamUpstreamDeps;

  constructor(snapshot: Snapshot, previous: StreamUpstreams | null, deps: StreamUpstreamDeps) {
    this.snapshot = snapshot;
    this.previous = previous;
    this.deps = deps;
  }

  /** The upstream object `upstreams/<id>`, or null when it does not exist or is invalid. */
  byId(id: string): UpstreamRuntime | null {
    const found = this.snapshot.get('upstreams', id);
    return found === undefined ? null : this.get(`upstreams/${id}`, found.value);
  }

  /** An inline upstream, keyed by its owner (`stream_routes/<id>`, `services/<id>`, or its JSON). */
  get(key: string, conf: JsonObject): UpstreamRuntime | null {
    const have = this.map.get(key);
    if (have !== undefined) return have;
    if (this.errors.has(key)) return null;
    const json = JSON.stringify(conf);
    const old = this.previous?.map.get(key);
    let rt: UpstreamRuntime;
    if (old !== undefined && old.confJson === json) rt = old;
    else {
      try {
        rt = this.create(key, conf);
      } catch (err) {
        this.errors.set(key, (err as Error).message);
        return null;
      }
    }
    this.map.set(key, rt);
    return rt;
  }

  private create(key: string, conf: JsonObject): UpstreamRuntime {
    const h = this.deps.health;
    return new UpstreamRuntime({
      key,
      conf,
      registry: this.deps.balancers,
      health: typeof h === 'function' ? h(key, conf) : h,
      dns: this.deps.dns ?? null,
      clientCert: (id) => {
        const ssl = this.snapshot.get('ssls', id)?.value;
        if (ssl === undefined || ssl.type !== 'client') return undefined;
        return typeof ssl.cert === 'string' && typeof ssl.key === 'string' ? { cert: ssl.cert, key: ssl.key } : undefined;
      },
    });
  }

  has(rt: UpstreamRuntime): boolean {
    return this.map.get(rt.key) === rt;
  }

  /** Stops DNS refreshes of runtimes `next` does not use (next = null: all of them). */
  closeUnused(next: StreamUpstreams | null): void {
    for (const rt of this.map.values()) if (next === null || !next.has(rt)) rt.close();
  }
}
