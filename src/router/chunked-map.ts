// A string-keyed map split into 256 Map buckets, so a persistent copy changes one bucket (and the bucket
// array) instead of copying every entry: the router's exact-path and host tables and its route index are
// replaced on every config change and may hold 10,000+ keys. Writes follow radix.ts's Edit discipline.
import type { Edit } from './radix.ts';

const BUCKETS = 256;

/** hot path: O(1) (a few characters, not the whole key); only the spread across buckets depends on it. */
function slot(key: string): number {
  const n = key.length;
  if (n === 0) return 0;
  return (n * 7 + key.charCodeAt(n - 1) * 31 + key.charCodeAt(n >> 1) * 17 + key.charCodeAt(n >> 2) * 5 + key.charCodeAt((3 * n) >> 2)) & (BUCKETS - 1);
}

export class ChunkedMap<V> {
  private buckets: (Map<string, V> | undefined)[] = new Array<Map<string, V> | undefined>(BUCKETS).fill(undefined);
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** A map answering like this one; writes to either (under distinct Edits) leave the other unchanged. */
  copy(): ChunkedMap<V> {
    const m = new ChunkedMap<V>();
    m.buckets = this.buckets;
    m.count = this.count;
    return m;
  }

  /** hot path */
  get(key: string): V | undefined {
    const b = this.buckets[slot(key)];
    return b === undefined ? undefined : b.get(key);
  }

  has(key: string): boolean {
    return this.buckets[slot(key)]?.has(key) === true;
  }

  set(key: string, value: V, edit: Edit): void {
    const b = this.own(slot(key), edit);
    if (!b.has(key)) this.count++;
    b.set(key, value);
  }

  delete(key: string, edit: Edit): void {
    const i = slot(key);
    if (this.buckets[i]?.has(key) !== true) return;
    this.own(i, edit).delete(key);
    this.count--;
  }

  *keys(): IterableIterator<string> {
    for (const b of this.buckets) if (b !== undefined) yield* b.keys();
  }

  *entries(): IterableIterator<[string, V]> {
    for (const b of this.buckets) if (b !== undefined) yield* b.entries();
  }

  *values(): IterableIterator<V> {
    for (const b of this.buckets) if (b !== undefined) yield* b.values();
  }

  private own(i: number, edit: Edit): Map<string, V> {
    if (!edit.owns(this.buckets)) this.buckets = edit.own(this.buckets.slice());
    let b = this.buckets[i];
    if (b === undefined || !edit.owns(b)) {
      b = edit.own(b === undefined ? new Map<string, V>() : new Map(b));
      this.buckets[i] = b;
    }
    return b;
  }
}
