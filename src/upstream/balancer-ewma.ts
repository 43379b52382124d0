// Peak EWMA: each node keeps an exponentially weighted moving average of its latency that jumps up to any
// slower sample at once and decays towards faster ones (time constant DECAY_MS). The score is the decayed
// average times (in-flight + 1); a pick compares two random candidates (power of two choices) and takes the
// lower score. Failed requests count as a latency of at least FAILURE_PENALTY_MS. Nodes never measured
// score 0, so fresh nodes get tried quickly. Picks read the clock of the latest end() instead of the system
// clock (a clock read costs more than the rest of the pick); traffic keeps that clock moving.
import { ALL_HEALTHY, type Balancer, type BalancerFactory, type Endpoint, type HealthView, type Outcome, type PickContext, type PickResult } from './balancer.ts';
import { EXHAUSTED, NO_NODES, indexByKey, okResults } from './pick-results.ts';

const DECAY_MS = 10_000;
const FAILURE_PENALTY_MS = 5_000;

export class EwmaBalancer implements Balancer {
  private readonly keys: string[];
  private readonly results: PickResult[];
  private readonly index: Map<string, number>;
  private readonly health: HealthView;
  /** False for ALL_HEALTHY: skips the per-node health calls. */
  private readonly checkHealth: boolean;
  private readonly ewma: Float64Array;
  private readonly stamp: Float64Array;
  private readonly inflight: Float64Array;
  private readonly scratch: Int32Array;
  private readonly now: () => number;
  private clock = 0;

  constructor(endpoints: readonly Endpoint[], health: HealthView, now: () => number = performance.now.bind(performance)) {
    const live = endpoints.filter((e) => e.weight > 0);
    this.keys = live.map((e) => e.key);
    this.results = okResults(live);
    this.index = indexByKey(live);
    this.health = health;
    this.checkHealth = health !== ALL_HEALTHY;
    this.ewma = new Float64Array(live.length);
    this.stamp = new Float64Array(live.length);
    this.inflight = new Float64Array(live.length);
    this.scratch = new Int32Array(live.length);
    this.now = now;
  }

  pick(ctx: PickContext): PickResult {
    // hot path
    if (this.keys.length === 0) return NO_NODES;
    let count = this.candidates(ctx.tried, false);
    if (count === -1) count = this.candidates(ctx.tried, true);
    if (count <= 0) return EXHAUSTED;
    const c = this.scratch;
    if (count === 1) return this.results[c[0]!]!;
    const a = (Math.random() * count) | 0;
    let b = (Math.random() * (count - 1)) | 0;
    if (b >= a) b++;
    const now = this.clock;
    const ia = c[a]!;
    const ib = c[b]!;
    return this.results[this.score(ib, now) < this.score(ia, now) ? ib : ia]!;
  }

  begin(endpoint: Endpoint): void {
    const i = this.index.get(endpoint.key);
    if (i !== undefined) this.inflight[i]! += 1;
  }

  end(endpoint: Endpoint, outcome: Outcome): void {
    const i = this.index.get(endpoint.key);
    if (i === undefined) return;
    if (this.inflight[i]! > 0) this.inflight[i]! -= 1;
    const rtt = outcome.failed ? Math.max(outcome.latencyMs, FAILURE_PENALTY_MS) : Math.max(0, outcome.latencyMs);
    const now = this.now();
    this.clock = now;
    const w = Math.exp(-(now - this.stamp[i]!) / DECAY_MS);
    const prev = this.ewma[i]! * w;
    this.ewma[i] = rtt > prev ? rtt : prev + rtt * (1 - w);
    this.stamp[i] = now;
  }

  /** Fills scratch with candidate indexes; -1 when no endpoint is healthy at all (caller retries ignoring health). */
  private candidates(tried: ReadonlySet<string> | null, ignoreHealth: boolean): number {
    // hot path
    const keys = this.keys;
    let count = 0;
    let anyHealthy = !this.checkHealth;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      if (!ignoreHealth && this.checkHealth) {
        if (!this.health.isHealthy(key)) continue;
        anyHealthy = true;
      }
      if (tried !== null && tried.has(key)) continue;
      this.scratch[count++] = i;
    }
    return count === 0 && !ignoreHealth && !anyHealthy ? -1 : count;
  }

  /** The average decays towards 0 while a node is idle, so a node that was slow long ago gets probed again. */
  private decayed(i: number, now: number): number {
    // hot path
    const v = this.ewma[i]!;
    if (v === 0) return 0;
    const age = now - this.stamp[i]!;
    return age <= 0 ? v : v * Math.exp(-age / DECAY_MS);
  }

  private score(i: number, now: number): number {
    // hot path
    return this.decayed(i, now) * (this.inflight[i]! + 1);
  }
}

export const ewmaFactory: BalancerFactory = {
  type: 'ewma',
  create: (endpoints, _conf, health) => new EwmaBalancer(endpoints, health),
};
