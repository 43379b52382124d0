// Counter stores for rate limiting: a fixed or sliding window count per key (limit-count), a cost-charged fixed
// window per key (ai-rate-limiting's token budgets), a leaky bucket per
// key (limit-req) and an in-flight count per key (limit-conn). Local stores answer synchronously; the node-wide
// store of a cluster worker (cluster.ts) and the Redis stores answer asynchronously. Keys are built by the
// caller (plugin scope or group + the request's key), so counters survive config snapshots while the conf is
// unchanged.

export type WindowType = 'fixed' | 'sliding';

export interface CounterResult {
  /** The count of the current window including this request (sliding: the weighted estimate). */
  readonly count: number;
  /** Milliseconds until the current window ends. */
  readonly resetMs: number;
  /** Whether the request fits within `limit` (a rejected sliding-window request is not counted). */
  readonly allowed: boolean;
}

export interface CounterStore {
  /** Counts one request against `key` in a window of `windowMs` allowing `limit` requests. */
  incr(key: string, windowMs: number, limit: number, type: WindowType): CounterResult | Promise<CounterResult>;
}

export interface CostResult {
  /** The window's total, this cost included. */
  readonly count: number;
  /** Milliseconds until the window ends. */
  readonly resetMs: number;
}

export interface CostCounterStore {
  /**
   * Adds `cost` to `key`'s fixed window of `windowMs` (started by the key's first use, as incr's fixed windows)
   * with no limit applied: the caller charges what was spent (tokens an LLM answer used) and compares the total
   * itself. A cost of 0 reads the window (and starts it).
   */
  incrBy(key: string, windowMs: number, cost: number): CostResult | Promise<CostResult>;
}

/** Leaky bucket answer: the delay in seconds the request must wait, or REJECTED. */
export const REJECTED = -1;

export interface LeakyBucketStore {
  /** One request against `key` leaking `rate` requests/s with room for `burst` excess requests. */
  leak(key: string, rate: number, burst: number): number | Promise<number>;
}

export interface SeenStore {
  /**
   * Remembers `key` for `ttlMs` unless it is still remembered: SEEN_NEW, SEEN_REPEAT, or SEEN_FULL when the
   * store holds no room for a new key (seen.ts; never evicts a live key).
   */
  remember(key: string, ttlMs: number): number | Promise<number>;
}

export interface ConnStore {
  /** Takes one slot of `key` if fewer than `limit` are held; the new count, or REJECTED. */
  connIn(key: string, limit: number, id: string): number | Promise<number>;
  /** Gives back the slot `id` took. */
  connOut(key: string, id: string): void;
}
