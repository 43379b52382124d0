// Remembered one-time tokens (hmac-auth's reject_replays signatures): a key is either new, already seen within
// its lifetime, or refused because the store is full. This store is apart from the rate-limit counters on
// purpose: those drop their oldest keys when full (a lost count only loosens a limit), and clients choose many
// of their keys (limit-count's key), so sharing a store would let a client flush remembered signatures and
// replay them. Here nothing is evicted before its lifetime ends: when full, a new key is refused (fails closed).
import type { SeenStore } from './counter.ts';

/** The key was not seen within its lifetime; it is remembered now. */
export const SEEN_NEW = 0;
/** The key was seen and its lifetime has not ended. */
export const SEEN_REPEAT = 1;
/** The key is new but the store is full of live keys: it was not remembered. */
export const SEEN_FULL = 2;

export const DEFAULT_SEEN_CAPACITY = 1_000_000;
const SWEEP_MS = 10_000;
/** When full, expired keys are swept at most this often, so a flood of new keys is not a sweep per request. */
const FULL_SWEEP_MS = 1000;

export class LocalSeenStore implements SeenStore {
  /** Key -> epoch ms when it may be used again. */
  readonly #until = new Map<string, number>();
  #timer: NodeJS.Timeout | null = null;
  #lastFullSweep = 0;
  readonly #now: () => number;
  /** Live keys held at most; a test lowers it to fill the store. */
  capacity: number;

  constructor(capacity = DEFAULT_SEEN_CAPACITY, now: () => number = Date.now) {
    this.capacity = capacity;
    this.#now = now;
  }

  get size(): number {
    return this.#until.size;
  }

  // hot path
  remember(key: string, ttlMs: number): number {
    const now = this.#now();
    const until = this.#until.get(key);
    if (until !== undefined) {
      if (now < until) return SEEN_REPEAT;
    } else if (this.#until.size >= this.capacity) {
      if (now - this.#lastFullSweep < FULL_SWEEP_MS) return SEEN_FULL;
      this.#lastFullSweep = now;
      this.sweep();
      if (this.#until.size >= this.capacity) return SEEN_FULL;
    }
    this.#until.set(key, now + ttlMs);
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.sweep(), SWEEP_MS);
      this.#timer.unref();
    }
    return SEEN_NEW;
  }

  /** Forgets keys whose lifetime ended; stops the timer when nothing is left. */
  sweep(): void {
    const now = this.#now();
    for (const [k, until] of this.#until) if (now >= until) this.#until.delete(k);
    if (this.#until.size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }
}

/** The process-wide store of remembered signatures (the cluster primary's answers the workers). */
export const localSeen = new LocalSeenStore();
