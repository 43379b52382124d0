// Smooth weighted round robin (the nginx upstream algorithm): every pick adds each candidate's weight to its
// current value, takes the largest and subtracts the candidates' total from it. Over sum(weights) picks each
// node is chosen exactly `weight` times, interleaved. Weight-0 nodes are never candidates.
import { ALL_HEALTHY, type Balancer, type BalancerFactory, type Endpoint, type HealthView, type PickContext, type PickResult } from './balancer.ts';
import { EXHAUSTED, NO_NODES, okResults } from './pick-results.ts';

const NONE = -1;
/** No candidate and no healthy endpoint at all: the caller retries ignoring health. */
const NONE_HEALTHY = -2;

export class RoundRobinBalancer implements Balancer {
  private readonly keys: string[];
  private readonly weights: Float64Array;
  private readonly current: Float64Array;
  private readonly results: PickResult[];
  private readonly health: HealthView;
  /** False for ALL_HEALTHY: skips the per-node health calls. */
  private readonly checkHealth: boolean;

  constructor(endpoints: readonly Endpoint[], health: HealthView) {
    const live = endpoints.filter((e) => e.weight > 0);
    this.keys = live.map((e) => e.key);
    this.weights = Float64Array.from(live, (e) => e.weight);
    this.current = new Float64Array(live.length);
    this.results = okResults(live);
    this.health = health;
    this.checkHealth = health !== ALL_HEALTHY;
  }

  pick(ctx: PickContext): PickResult {
    // hot path
    if (this.keys.length === 0) return NO_NODES;
    let i = this.step(ctx.tried, false);
    if (i === NONE_HEALTHY) i = this.step(ctx.tried, true);
    return i >= 0 ? this.results[i]! : EXHAUSTED;
  }

  private step(tried: ReadonlySet<string> | null, ignoreHealth: boolean): number {
    // hot path
    const keys = this.keys;
    const weights = this.weights;
    const current = this.current;
    let best = NONE;
    let total = 0;
    let anyHealthy = !this.checkHealth;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      if (!ignoreHealth && this.checkHealth) {
        if (!this.health.isHealthy(key)) continue;
        anyHealthy = true;
      }
      if (tried !== null && tried.has(key)) continue;
      const w = weights[i]!;
      current[i] += w;
      total += w;
      if (best === NONE || current[i]! > current[best]!) best = i;
    }
    if (best !== NONE) {
      current[best] -= total;
      return best;
    }
    return ignoreHealth || anyHealthy ? NONE : NONE_HEALTHY;
  }
}

export const roundRobinFactory: BalancerFactory = {
  type: 'roundrobin',
  create: (endpoints, _conf, health) => new RoundRobinBalancer(endpoints, health),
};
