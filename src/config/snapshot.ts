// ConfigSnapshot: the immutable, validated, revisioned view of all resources. Built off the hot path from the
// store's items; invalid items are skipped and reported, never thrown. Items whose StoredItem object is the
// same (===) as in the previous snapshot reuse its result, so a rebuild costs one validation per change.
// Reuse assumes the plugin set and expression compiler did not change; pass no `previous` when they do.
// A kind whose items are all the same objects as before keeps its whole view, so sameKind() tells runtime
// builders in O(1) which kinds changed between two snapshots.
import type { JsonObject, Kind, StoredItem } from './resources.ts';
import { RESOURCE_KINDS } from './resources.ts';
import { cloneJson } from '../schema/clone.ts';
import { validateResource, type CompileVars, type PluginSchemaSource } from '../schema/validator.ts';
import { ChunkedMap } from '../router/chunked-map.ts';
import { Edit } from '../router/radix.ts';

export interface SnapshotItem {
  readonly item: StoredItem;
  /** Validated, defaults applied, deeply frozen. */
  readonly value: JsonObject;
}

export interface SnapshotError {
  readonly key: string;
  readonly message: string;
}

export interface BuildOptions {
  readonly plugins: PluginSchemaSource;
  readonly compileVars?: CompileVars;
  readonly previous?: Snapshot;
  /**
   * etcd data plane: an object naming a plugin `plugins` does not have (disabled in config.yaml, removed by a
   * plugin reload, not implemented) is kept without that plugin, and (object key, plugin) is reported here
   * once per validation of the object, as APISIX's plugin_checker warns and skips. Unset (yaml/json
   * providers, as in APISIX): such an object is invalid.
   */
  readonly onUnknownPlugin?: (key: string, plugin: string) => void;
}

type Outcome = SnapshotItem | SnapshotError;

interface KindView {
  /** The stored items of the kind in key order, valid or not. */
  readonly items: readonly StoredItem[];
  /** The outcome of each of `items`, same positions. */
  readonly outcomes: readonly Outcome[];
  readonly list: readonly SnapshotItem[];
  /** Persistent: a view built from another shares the unchanged buckets of its index. */
  readonly byId: ChunkedMap<SnapshotItem>;
  readonly errors: readonly SnapshotError[];
}

const EMPTY_VIEW: KindView = Object.freeze({
  items: Object.freeze([]),
  outcomes: Object.freeze([]),
  list: Object.freeze([]),
  byId: new ChunkedMap<SnapshotItem>(),
  errors: Object.freeze([]),
});

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}

export class Snapshot {
  readonly revision: number;
  readonly errors: readonly SnapshotError[];
  private readonly views: ReadonlyMap<Kind, KindView>;
  /** Outcome per StoredItem object, shared along a chain of snapshots built one from the other. */
  private readonly cache: WeakMap<StoredItem, Outcome>;

  constructor(revision: number, views: ReadonlyMap<Kind, KindView>, errors: readonly SnapshotError[], cache: WeakMap<StoredItem, Outcome>) {
    this.revision = revision;
    this.views = views;
    this.errors = Object.freeze(errors);
    this.cache = cache;
  }

  /** @internal The outcome cache, passed on to the next build. */
  get outcomeCache(): WeakMap<StoredItem, Outcome> {
    return this.cache;
  }

  /** @internal The view of a kind (buildSnapshot reuses unchanged ones). */
  view(kind: Kind): KindView {
    return this.views.get(kind) ?? EMPTY_VIEW;
  }

  /**
   * True when `kind` has exactly the same items (same StoredItem objects, same outcomes) in both snapshots.
   * O(1); false negatives are possible only between snapshots not built one from the other.
   */
  sameKind(kind: Kind, other: Snapshot): boolean {
    return this.view(kind) === other.view(kind);
  }

  get(kind: Kind, id: string): SnapshotItem | undefined {
    return (this.views.get(kind) ?? EMPTY_VIEW).byId.get(id);
  }

  /**
   * How `kind` differs from `older` (any earlier snapshot): valid items that are new or changed, and ids
   * that are gone (deleted, or no longer valid). Costs one identity comparison per item.
   */
  diff(kind: Kind, older: Snapshot): { changed: SnapshotItem[]; removed: string[] } {
    const changed: SnapshotItem[] = [];
    const removed: string[] = [];
    const view = this.view(kind);
    const a = older.view(kind).items;
    const b = view.items;
    const add = (item: StoredItem): void => {
      const outcome = this.cache.get(item);
      if (outcome !== undefined && 'item' in outcome) changed.push(outcome);
      else removed.push(item.id);
    };
    let i = 0;
    let j = 0;
    while (i < a.length || j < b.length) {
      const x = a[i];
      const y = b[j];
      if (x === y) {
        i++;
        j++;
      } else if (y === undefined || (x !== undefined && x.key < y.key)) {
        removed.push(x!.id);
        i++;
      } else if (x === undefined || y.key < x.key) {
        add(y);
        j++;
      } else {
        add(y);
        i++;
        j++;
      }
    }
    return { changed, removed };
  }

  /** Valid items of a kind in storage (key) order. */
  list(kind: Kind): readonly SnapshotItem[] {
    return (this.views.get(kind) ?? EMPTY_VIEW).list;
  }

  size(kind: Kind): number {
    return (this.views.get(kind) ?? EMPTY_VIEW).list.length;
  }

  /** The previous outcome for this exact StoredItem object, if any (used by buildSnapshot). */
  outcomeOf(item: StoredItem): SnapshotItem | SnapshotError | undefined {
    return this.cache.get(item);
  }

  static empty(revision = 0): Snapshot {
    return new Snapshot(revision, new Map(), [], new WeakMap());
  }
}

function byKey(a: StoredItem, b: StoredItem): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

function sortedByKey(items: StoredItem[]): StoredItem[] {
  for (let i = 1; i < items.length; i++) {
    if (items[i - 1]!.key > items[i]!.key) return items.sort(byKey);
  }
  return items;
}

/** Plugin metadata of a plugin this gateway does not have takes no effect: APISIX keeps it unchecked. */
function isForeignMetadata(item: StoredItem, plugins: PluginSchemaSource): boolean {
  return item.kind === 'plugin_metadata' && !plugins.get(item.id, 'http') && !plugins.get(item.id, 'stream');
}

function validateItem(item: StoredItem, opts: BuildOptions): SnapshotItem | SnapshotError {
  if (isForeignMetadata(item, opts.plugins)) {
    return Object.freeze({ item, value: deepFreeze(cloneJson(item.value)) });
  }
  const sink = opts.onUnknownPlugin;
  let res;
  try {
    res = validateResource(item.kind, item.value, {
      plugins: opts.plugins,
      withDefaults: true,
      compileVars: opts.compileVars,
      id: item.id,
      onUnknownPlugin: sink === undefined ? undefined : (name) => sink(item.key, name),
    });
  } catch (err) {
    // A plugin's own check (or a broken plugin schema) threw: the item is unusable, the build goes on.
    return Object.freeze({ key: item.key, message: `validation failed: ${(err as Error).message}` });
  }
  if (!res.ok) return Object.freeze({ key: item.key, message: res.error });
  return Object.freeze({ item, value: deepFreeze(res.value) });
}

function sameItems(a: readonly StoredItem[], b: readonly StoredItem[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The view of a kind's sorted `items`, walking them beside the previous view's: unchanged items reuse their
 * outcome and index entry, so only new, changed and removed items cost more than a comparison.
 */
function buildView(items: StoredItem[], prev: KindView, cache: WeakMap<StoredItem, Outcome>, opts: BuildOptions): KindView {
  const edit = new Edit(prev === EMPTY_VIEW);
  const byId = prev === EMPTY_VIEW ? new ChunkedMap<SnapshotItem>() : prev.byId.copy();
  const outcomes: Outcome[] = [];
  const valid: SnapshotItem[] = [];
  const errors: SnapshotError[] = [];
  const resolve = (item: StoredItem): Outcome => {
    let outcome = cache.get(item);
    if (outcome === undefined) {
      outcome = validateItem(item, opts);
      cache.set(item, outcome);
    }
    if ('item' in outcome) byId.set(item.id, outcome, edit);
    else byId.delete(item.id, edit);
    return outcome;
  };
  const a = prev.items;
  let i = 0;
  for (let j = 0; j < items.length; j++) {
    const y = items[j]!;
    while (i < a.length && a[i] !== y && a[i]!.key < y.key) {
      if ('item' in prev.outcomes[i]!) byId.delete(a[i]!.id, edit);
      i++;
    }
    let outcome: Outcome;
    if (i < a.length && a[i] === y) outcome = prev.outcomes[i++]!;
    else {
      if (i < a.length && a[i]!.key === y.key) i++;
      outcome = resolve(y);
    }
    outcomes.push(outcome);
    if ('item' in outcome) valid.push(outcome);
    else errors.push(outcome);
  }
  for (; i < a.length; i++) if ('item' in prev.outcomes[i]!) byId.delete(a[i]!.id, edit);
  return { items, outcomes, list: Object.freeze(valid), byId, errors };
}

/** Builds the snapshot of `items`; never throws for invalid items (they are listed in `errors`). */
export function buildSnapshot(items: Iterable<StoredItem>, revision: number, opts: BuildOptions): Snapshot {
  const grouped = new Map<Kind, StoredItem[]>();
  for (const kind of RESOURCE_KINDS) grouped.set(kind, []);
  for (const item of items) grouped.get(item.kind)?.push(item);

  const previous = opts.previous;
  const cache = previous?.outcomeCache ?? new WeakMap<StoredItem, Outcome>();
  const views = new Map<Kind, KindView>();
  const errors: SnapshotError[] = [];
  for (const [kind, list] of grouped) {
    if (list.length === 0) continue;
    const sorted = sortedByKey(list);
    const prev = previous?.view(kind) ?? EMPTY_VIEW;
    const view = prev !== EMPTY_VIEW && sameItems(prev.items, sorted) ? prev : buildView(sorted, prev, cache, opts);
    views.set(kind, view);
    for (const e of view.errors) errors.push(e);
  }
  return new Snapshot(revision, views, errors, cache);
}
