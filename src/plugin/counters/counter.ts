// Counter stores for rate limiting (limit-count and friends): a fixed or sliding window count per key.
// The local store is per process and answers synchronously; the Redis store is shared by every gateway
// instance using the same Redis target and answers asynchronously. Keys are built by the caller (plugin
// scope or group + the request's key), so counters survive config snapshots while the conf is unchanged.

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
