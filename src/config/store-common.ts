// Pieces shared by the etcd and file ConfigStore backends: the in-memory view, full-reload diffing that keeps
// the identity of unchanged items, JSON value decoding and retry backoff.
import { unsafeJsonReason } from './safe-json.ts';
import type { ConfigEvent } from './store.ts';
import { parseKey, type JsonObject, type Kind, type StoredItem } from './resources.ts';

/** The in-memory view: items by key, indexed per kind. Iteration order is insertion order. */
export class ItemView {
  private readonly byKey = new Map<string, StoredItem>();
  private readonly byKind = new Map<Kind, Map<string, StoredItem>>();

  get size(): number {
    return this.byKey.size;
  }

  get(kind: Kind, id: string): StoredItem | undefined {
    return this.byKind.get(kind)?.get(id);
  }

  getByKey(key: string): StoredItem | undefined {
    return this.byKey.get(key);
  }

  list(kind: Kind): StoredItem[] {
    const m = this.byKind.get(kind);
    return m ? Array.from(m.values()) : [];
  }

  all(): StoredItem[] {
    return Array.from(this.byKey.values());
  }

  set(item: StoredItem): void {
    this.byKey.set(item.key, item);
    let m = this.byKind.get(item.kind);
    if (!m) {
      m = new Map();
      this.byKind.set(item.kind, m);
    }
    m.set(item.id, item);
  }

  remove(key: string): StoredItem | undefined {
    const item = this.byKey.get(key);
    if (!item) return undefined;
    this.byKey.delete(key);
    this.byKind.get(item.kind)?.delete(item.id);
    return item;
  }
}

export function makeItem(
  prefix: string,
  key: string,
  value: JsonObject,
  createdIndex: number,
  modifiedIndex: number,
): StoredItem | null {
  const parsed = parseKey(prefix, key);
  if (!parsed) return null;
  return Object.freeze({ kind: parsed.kind, id: parsed.id, key, value, createdIndex, modifiedIndex });
}

/** Decodes a stored value: it must be a JSON object. Returns an error text instead of throwing. */
export function decodeValue(raw: string): { ok: true; value: JsonObject } | { ok: false; error: string } {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return { ok: false, error: 'value is not a JSON object' };
  const bad = unsafeJsonReason(v);
  if (bad !== null) return { ok: false, error: bad };
  return { ok: true, value: v as JsonObject };
}

/**
 * Replaces the whole view by `fresh` (a full reload) and returns the differences as events.
 * Items of `fresh` must already reuse the old object when unchanged; `keep` lists keys whose fresh value was
 * unusable, for which the previous good item stays.
 */
export function replaceView(view: ItemView, fresh: Map<string, StoredItem>, keep: ReadonlySet<string>): ConfigEvent[] {
  const events: ConfigEvent[] = [];
  for (const old of view.all()) {
    if (!fresh.has(old.key) && !keep.has(old.key)) {
      view.remove(old.key);
      events.push({ type: 'delete', kind: old.kind, id: old.id });
    }
  }
  for (const item of fresh.values()) {
    if (view.getByKey(item.key) === item) continue;
    view.set(item);
    events.push({ type: 'put', kind: item.kind, id: item.id, item });
  }
  return events;
}

/** Exponential backoff with +/-25% jitter: base * 2^attempt, capped. */
export function backoffMs(attempt: number, baseMs = 500, capMs = 8000): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.round(exp * (0.75 + Math.random() * 0.5));
}

/** A cancellable sleep: close() resolves every pending sleep at once so loops can observe shutdown. */
export class Sleeper {
  private readonly pending = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.pending.delete(entry);
          resolve();
        }, ms),
        resolve,
      };
      this.pending.add(entry);
    });
  }

  cancelAll(): void {
    for (const e of this.pending) {
      clearTimeout(e.timer);
      e.resolve();
    }
    this.pending.clear();
  }
}

/** `n` as APISIX's 20-digit zero-padded id. */
export function padId(n: bigint | number): string {
  return String(n).padStart(20, '0');
}
