// Node priorities (APISIX `priority` balancer): endpoints are grouped by priority, each group gets its own
// balancer of the upstream's type, and a pick uses the highest group that still has a usable endpoint. A
// group is passed over only when every endpoint in it is tried or unhealthy. When no endpoint of the whole
// upstream is healthy, health is ignored everywhere (the groups' own all-unhealthy fallback applies).
import type { JsonObject } from '../config/resources.ts';
import type { Balancer, BalancerFactory, Endpoint, HealthView, Outcome, PickContext, PickResult } from './balancer.ts';
import { EXHAUSTED, NO_NODES } from './pick-results.ts';

interface Group {
  readonly keys: readonly string[];
  readonly balancer: Balancer;
}

export class PriorityBalancer implements Balancer {
  private readonly groups: readonly Group[];
  private readonly allKeys: readonly string[];
  private readonly owner: Map<string, Balancer>;
  private readonly health: HealthView;

  constructor(factory: BalancerFactory, endpoints: readonly Endpoint[], conf: JsonObject, health: HealthView) {
    const byPriority = new Map<number, Endpoint[]>();
    for (const e of endpoints) {
      const list = byPriority.get(e.priority);
      if (list) list.push(e);
      else byPriority.set(e.priority, [e]);
    }
    this.owner = new Map();
    this.groups = [...byPriority.entries()]
      .sort((a, b) => b[0] - a[0])
      .map(([, eps]) => {
        const balancer = factory.create(eps, conf, health);
        for (const e of eps) this.owner.set(e.key, balancer);
        return { keys: eps.filter((e) => e.weight > 0).map((e) => e.key), balancer };
      });
    this.allKeys = this.groups.flatMap((g) => g.keys);
    this.health = health;
  }

  pick(ctx: PickContext): PickResult {
    // hot path
    if (this.allKeys.length === 0) return NO_NODES;
    const useHealth = this.anyHealthy();
    const tried = ctx.tried;
    for (let g = 0; g < this.groups.length; g++) {
      const group = this.groups[g]!;
      if (!this.usable(group.keys, tried, useHealth)) continue;
      const r = group.balancer.pick(ctx);
      if (r.ok) return r;
    }
    return EXHAUSTED;
  }

  begin(endpoint: Endpoint): void {
    this.owner.get(endpoint.key)?.begin?.(endpoint);
  }

  end(endpoint: Endpoint, outcome: Outcome): void {
    this.owner.get(endpoint.key)?.end?.(endpoint, outcome);
  }

  private anyHealthy(): boolean {
    // hot path
    const keys = this.allKeys;
    for (let i = 0; i < keys.length; i++) if (this.health.isHealthy(keys[i]!)) return true;
    return false;
  }

  private usable(keys: readonly string[], tried: ReadonlySet<string> | null, useHealth: boolean): boolean {
    // hot path
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      if (tried !== null && tried.has(key)) continue;
      if (!useHealth || this.health.isHealthy(key)) return true;
    }
    return false;
  }
}
