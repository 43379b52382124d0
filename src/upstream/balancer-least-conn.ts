// Least connections: the candidate with the lowest (in-flight + 1) / weight wins; ties are broken by smooth
// weighted round robin among the tied candidates so that an idle upstream still spreads by weight.
import { ALL_HEALTHY, type Balancer, type BalancerFactory, type Endpoint, type HealthView, type Outcome, type PickContext, type PickResult } from './balancer.ts';
import { EXHAUSTED, NO_NODES, indexByKey, okResults } from './pick-results.ts';

export class LeastConnBalancer implements Balancer {
  private readonly keys: string[];
  private readonly weights: Float64Array;
  private readonly current: Float64Array;
  private readonly inflight: Float64Array;
  private readonly results: PickResult[];
  private readonly index: Map<string, number>;
  private readonly health: HealthView;
  /** False for ALL_HEALTHY: skips the per-node health calls. */
  private readonly checkHealth: boolean;

  constructor(endpoints: readonly Endpoint[], health: HealthView) {
    const live = endpoints.filter((e) => e.weight > 0);
    this.keys = live.map((e) => e.key);
    this.weights = Float64Array.from(live, (e) => e.weight);
    this.current = new Float64Array(live.length);
    this.inflight = new Float64Array(live.length);
    this.results = okResults(live);
    this.index = indexByKey(live);
    this.health = health;
    this.checkHealth = health !== ALL_HEALTHY;
  }

  pick(ctx: PickContext): PickResult {
    // hot path
    if (this.keys.length === 0) return NO_NODES;
    let i = this.select(ctx.tried, false);
    if (i === -2) i = this.select(ctx.tried, true);
    return i >= 0 ? this.results[i]! : EXHAUSTED;
  }

  begin(endpoint: Endpoint): void {
    const i = this.index.get(endpoint.key);
    if (i !== undefined) this.inflight[i]! += 1;
  }

  end(endpoint: Endpoint, _outcome: Outcome): void {
    const i = this.index.get(endpoint.key);
    if (i !== undefined && this.inflight[i]! > 0) this.inflight[i]! -= 1;
  }

  /** Index of the pick, -1 when every candidate is tried, -2 when no endpoint is healthy at all. */
  private select(tried: ReadonlySet<string> | null, ignoreHealth: boolean): number {
    // hot path
    const keys = this.keys;
    const weights = this.weights;
    const inflight = this.inflight;
    let min = Infinity;
    let anyHealthy = !this.checkHealth;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      if (!ignoreHealth && this.checkHealth) {
        if (!this.health.isHealthy(key)) continue;
        anyHealthy = true;
      }
      if (tried !== null && tried.has(key)) continue;
      const score = (inflight[i]! + 1) / weights[i]!;
      if (score < min) min = score;
    }
    if (min === Infinity) return ignoreHealth || anyHealthy ? -1 : -2;

    const current = this.current;
    let best = -1;
    let total = 0;
    for (let i = 0; i < keys.length; i++) {
      if ((inflight[i]! + 1) / weights[i]! !== min) continue;
      const key = keys[i]!;
      if (!ignoreHealth && this.checkHealth && !this.health.isHealthy(key)) continue;
      if (tried !== null && tried.has(key)) continue;
      current[i]! += weights[i]!;
      total += weights[i]!;
      if (best < 0 || current[i]! > current[best]!) best = i;
    }
    current[best]! -= total;
    return best;
  }
}

export const leastConnFactory: BalancerFactory = {
  type: 'least_conn',
  create: (endpoints, _conf, health) => new LeastConnBalancer(endpoints, health),
};
