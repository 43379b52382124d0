// Per-process leaky buckets and in-flight counts (the local policies of limit-req and limit-conn; in a cluster
// the primary's copy is the node-wide authority, see cluster.ts).
// Leaky bucket as lua-resty-limit-traffic's resty.limit.req: `excess` (in requests) drains at `rate`/s; a request
// adds 1 after the drain and is rejected, without being recorded, when the excess would exceed `burst`; the
// first request of a key starts at 0. The delay is excess / rate seconds.
import { REJECTED, type ConnStore, type LeakyBucketStore } from './counter.ts';

interface Bucket {
  excess: number;
  last: number;
  /** Epoch ms after which the bucket is as good as absent (drained and one more interval elapsed). */
  idleAt: number;
}

const MAX_KEYS = 1_000_000;
const SWEEP_MS = 10_000;

export class LocalLeakyBuckets implements LeakyBucketStore {
  readonly #buckets = new Map<string, Bucket>();
  readonly #now: () => number;
  #timer: NodeJS.Timeout | null = null;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  get size(): number {
    return this.#buckets.size;
  }

  // hot path
  leak(key: string, rate: number, burst: number): number {
    const now = this.#now();
    const b = this.#buckets.get(key);
    if (b === undefined) {
      this.#admit();
      this.#buckets.set(key, { excess: 0, last: now, idleAt: now + 1000 / rate });
      return 0;
    }
    const excess = Math.max(b.excess - (rate * Math.abs(now - b.last)) / 1000 + 1, 0);
    if (excess > burst) return REJECTED;
    b.excess = excess;
    b.last = now;
    b.idleAt = now + ((excess + 1) * 1000) / rate;
    return excess / rate;
  }

  #admit(): void {
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.sweep(), SWEEP_MS);
      this.#timer.unref();
    }
    if (this.#buckets.size < MAX_KEYS) return;
    this.sweep();
    for (const k of this.#buckets.keys()) {
      if (this.#buckets.size < MAX_KEYS) return;
      this.#buckets.delete(k);
    }
  }

  /** Drops drained buckets (they behave exactly like absent ones). */
  sweep(): void {
    const now = this.#now();
    for (const [k, b] of this.#buckets) if (now >= b.idleAt) this.#buckets.delete(k);
    if (this.#buckets.size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }
}

/** In-flight counts per key (resty.limit.conn's shared dict): entries vanish when they drop to zero. */
export class LocalConnCounts implements ConnStore {
  readonly #n = new Map<string, number>();

  get size(): number {
    return this.#n.size;
  }

  // hot path
  connIn(key: string, limit: number): number {
    const n = (this.#n.get(key) ?? 0) + 1;
    if (n > limit) return REJECTED;
    this.#n.set(key, n);
    return n;
  }

  connOut(key: string): void {
    const n = (this.#n.get(key) ?? 1) - 1;
    if (n <= 0) this.#n.delete(key);
    else this.#n.set(key, n);
  }
}
