// Consistent hashing on a ring of virtual points (160 per weight unit, total capped). A pick hashes the
// request key, finds the first point at or after it and walks clockwise past tried or unhealthy nodes, so a
// node going down only moves the keys it owned; all other keys keep their node.
import type { JsonObject } from '../config/resources.ts';
import type { Balancer, BalancerFactory, Endpoint, HealthView, PickContext, PickResult } from './balancer.ts';
import { ChashKey } from './chash-key.ts';
import { hash32 } from './hash.ts';
import { EXHAUSTED, NO_NODES, okResults } from './pick-results.ts';

const POINTS_PER_WEIGHT = 160;
const MAX_POINTS = 1 << 16;

export class ChashBalancer implements Balancer {
  private readonly keys: string[];
  private readonly results: PickResult[];
  private readonly health: HealthView;
  private readonly hashKey: ChashKey;
  /** Sorted point hashes and, in parallel, the endpoint index that owns each point. */
  private readonly points: Uint32Array;
  private readonly owners: Int32Array;
  /** Walk bookkeeping: marks[i] === epoch means endpoint i was already visited by the current pick. */
  private readonly marks: Uint32Array;
  private epoch = 0;

  constructor(endpoints: readonly Endpoint[], conf: JsonObject, health: HealthView) {
    const live = endpoints.filter((e) => e.weight > 0);
    this.keys = live.map((e) => e.key);
    this.results = okResults(live);
    this.health = health;
    this.hashKey = new ChashKey(conf);
    this.marks = new Uint32Array(live.length);

    const totalWeight = live.reduce((s, e) => s + e.weight, 0);
    const perWeight = totalWeight * POINTS_PER_WEIGHT > MAX_POINTS ? MAX_POINTS / totalWeight : POINTS_PER_WEIGHT;
    const ring: { h: number; owner: number }[] = [];
    for (let i = 0; i < live.length; i++) {
      const n = Math.max(1, Math.round(live[i]!.weight * perWeight));
      for (let v = 0; v < n; v++) ring.push({ h: hash32(`${live[i]!.key}#${v}`), owner: i });
    }
    // Ties broken by owner key so that the ring does not depend on the order nodes were listed in.
    ring.sort((a, b) => a.h - b.h || (this.keys[a.owner]! < this.keys[b.owner]! ? -1 : 1));
    this.points = Uint32Array.from(ring, (p) => p.h);
    this.owners = Int32Array.from(ring, (p) => p.owner);
  }

  pick(ctx: PickContext): PickResult {
    // hot path
    const n = this.keys.length;
    if (n === 0) return NO_NODES;
    const h = hash32(this.hashKey.get(ctx.vars));
    const points = this.points;
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    const start = lo === points.length ? 0 : lo;

    this.epoch = (this.epoch + 1) >>> 0;
    if (this.epoch === 0) {
      this.marks.fill(0);
      this.epoch = 1;
    }
    const epoch = this.epoch;
    const marks = this.marks;
    const owners = this.owners;
    const tried = ctx.tried;
    let firstUntried = -1;
    let distinct = 0;
    for (let step = 0, p = start; step < points.length && distinct < n; step++) {
      const e = owners[p]!;
      p = p + 1 === points.length ? 0 : p + 1;
      if (marks[e] === epoch) continue;
      marks[e] = epoch;
      distinct++;
      const key = this.keys[e]!;
      if (tried !== null && tried.has(key)) continue;
      if (this.health.isHealthy(key)) return this.results[e]!;
      if (firstUntried < 0) firstUntried = e;
    }
    if (firstUntried < 0 || this.anyHealthy()) return EXHAUSTED;
    return this.results[firstUntried]!;
  }

  private anyHealthy(): boolean {
    for (let i = 0; i < this.keys.length; i++) if (this.health.isHealthy(this.keys[i]!)) return true;
    return false;
  }
}

export const chashFactory: BalancerFactory = {
  type: 'chash',
  create: (endpoints, conf, health) => new ChashBalancer(endpoints, conf, health),
};
