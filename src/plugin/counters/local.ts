// Per-process window counters. One module-level store serves every plugin instance, so counts survive
// config snapshots. Expired entries are swept by an unref'd timer; the key count is bounded.
import type { CostCounterStore, CostResult, CounterResult, CounterStore, WindowType } from './counter.ts';

interface Fixed {
  n: number;
  /** Epoch ms when the window ends (fixed windows start at the key's first request, like APISIX). */
  end: number;
}

interface Sliding {
  /** Index of the current window (epoch-aligned). */
  index: number;
  cur: number;
  prev: number;
  windowMs: number;
}

const MAX_KEYS = 1_000_000;

/**
 * Reset of a rejected sliding-window request, as APISIX: the window's end when the current window alone is
 * full, else when enough of the previous window will have slid out to admit one more.
 */
export function slidingRetryMs(remainingMs: number, cur: number, prev: number, limit: number, windowMs: number): number {
  if (cur >= limit || prev === 0) return remainingMs;
  return Math.max(0, remainingMs - ((limit - cur) * windowMs) / prev);
}
const SWEEP_MS = 10_000;

export class LocalCounterStore implements CounterStore, CostCounterStore {
  readonly #fixed = new Map<string, Fixed>();
  readonly #sliding = new Map<string, Sliding>();
  #timer: NodeJS.Timeout | null = null;
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  get size(): number {
    return this.#fixed.size + this.#sliding.size;
  }

  // hot path
  incr(key: string, windowMs: number, limit: number, type: WindowType): CounterResult {
    const now = this.#now();
    if (type === 'sliding') return this.#incrSliding(key, windowMs, limit, now);
    const e = this.#fixedWindow(key, windowMs, now);
    e.n++;
    return { count: e.n, resetMs: e.end - now, allowed: e.n <= limit };
  }

  incrBy(key: string, windowMs: number, cost: number): CostResult {
    const now = this.#now();
    const e = this.#fixedWindow(key, windowMs, now);
    e.n += cost;
    return { count: e.n, resetMs: e.end - now };
  }

  #fixedWindow(key: string, windowMs: number, now: number): Fixed {
    let e = this.#fixed.get(key);
    if (e === undefined || now >= e.end) {
      if (e === undefined) this.#admit();
      e = { n: 0, end: now + windowMs };
      this.#fixed.set(key, e);
    }
    return e;
  }

  #incrSliding(key: string, windowMs: number, limit: number, now: number): CounterResult {
    const index = Math.floor(now / windowMs);
    let e = this.#sliding.get(key);
    if (e === undefined) {
      this.#admit();
      e = { index, cur: 0, prev: 0, windowMs };
      this.#sliding.set(key, e);
    } else if (e.index !== index) {
      e.prev = e.index === index - 1 ? e.cur : 0;
      e.cur = 0;
      e.index = index;
    }
    const elapsed = now - index * windowMs;
    const weighted = Math.floor((e.prev * (windowMs - elapsed)) / windowMs);
    const count = weighted + e.cur + 1;
    const remaining = windowMs - elapsed;
    if (count > limit) return { count, resetMs: slidingRetryMs(remaining, e.cur, e.prev, limit, windowMs), allowed: false };
    e.cur++;
    return { count, resetMs: remaining, allowed: true };
  }

  /** Starts the sweeper and keeps the key count bounded before a new key is added. */
  #admit(): void {
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.sweep(), SWEEP_MS);
      this.#timer.unref();
    }
    if (this.size < MAX_KEYS) return;
    this.sweep();
    // Still full: drop the oldest keys (insertion order) rather than grow without bound.
    for (const map of [this.#fixed, this.#sliding] as Map<string, unknown>[]) {
      for (const k of map.keys()) {
        if (this.size < MAX_KEYS) return;
        map.delete(k);
      }
    }
  }

  /** Removes windows that ended; stops the timer when nothing is left. */
  sweep(): void {
    const now = this.#now();
    for (const [k, e] of this.#fixed) if (now >= e.end) this.#fixed.delete(k);
    for (const [k, e] of this.#sliding) if (now >= (e.index + 2) * e.windowMs) this.#sliding.delete(k);
    if (this.size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }
}

/** The process-wide local store (shared by every limit-count instance). */
export const localCounters = new LocalCounterStore();
