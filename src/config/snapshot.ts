// ConfigSnapshot: the immutable, validated, revisioned view of all resources. Built off the hot path from the
// store's items; invalid items are skipped and reported, never thrown. Items whose StoredItem object is the
// same (===) as in the previous snapshot reuse its result, so a rebuild costs one validation per change.
// Reuse assumes the plugin set and expression compiler did not change; pass no `previous` when they do.
import type { JsonObject, Kind, StoredItem } from './resources.ts';
import { RESOURCE_KINDS } from './resources.ts';
import { cloneJson } from '../schema/clone.ts';
import { validateResource, type CompileVars, type PluginSchemaSource } from '../schema/validator.ts';

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
}

interface KindView {
  readonly list: readonly SnapshotItem[];
  readonly byId: ReadonlyMap<string, SnapshotItem>;
}

const EMPTY_VIEW: KindView = Object.freeze({ list: Object.freeze([]), byId: new Map() });

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
  /** Outcome per StoredItem object, for reuse by the next build. */
  private readonly outcomes: ReadonlyMap<StoredItem, SnapshotItem | SnapshotError>;

  constructor(
    revision: number,
    views: ReadonlyMap<Kind, KindView>,
    errors: readonly SnapshotError[],
    outcomes: ReadonlyMap<StoredItem, SnapshotItem | SnapshotError>,
  ) {
    this.revision = revision;
    this.views = views;
    this.errors = Object.freeze(errors);
    this.outcomes = outcomes;
  }

  get(kind: Kind, id: string): SnapshotItem | undefined {
    return (this.views.get(kind) ?? EMPTY_VIEW).byId.get(id);
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
    return this.outcomes.get(item);
  }

  static empty(revision = 0): Snapshot {
    return new Snapshot(revision, new Map(), [], new Map());
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
  let res;
  try {
    res = validateResource(item.kind, item.value, {
      plugins: opts.plugins,
      withDefaults: true,
      compileVars: opts.compileVars,
      id: item.id,
    });
  } catch (err) {
    // A plugin's own check (or a broken plugin schema) threw: the item is unusable, the build goes on.
    return Object.freeze({ key: item.key, message: `validation failed: ${(err as Error).message}` });
  }
  if (!res.ok) return Object.freeze({ key: item.key, message: res.error });
  return Object.freeze({ item, value: deepFreeze(res.value) });
}

/** Builds the snapshot of `items`; never throws for invalid items (they are listed in `errors`). */
export function buildSnapshot(items: Iterable<StoredItem>, revision: number, opts: BuildOptions): Snapshot {
  const grouped = new Map<Kind, StoredItem[]>();
  for (const kind of RESOURCE_KINDS) grouped.set(kind, []);
  for (const item of items) grouped.get(item.kind)?.push(item);

  const previous = opts.previous;
  const views = new Map<Kind, KindView>();
  const errors: SnapshotError[] = [];
  const outcomes = new Map<StoredItem, SnapshotItem | SnapshotError>();
  for (const [kind, list] of grouped) {
    if (list.length === 0) continue;
    const valid: SnapshotItem[] = [];
    const byId = new Map<string, SnapshotItem>();
    for (const item of sortedByKey(list)) {
      const outcome = previous?.outcomeOf(item) ?? validateItem(item, opts);
      outcomes.set(item, outcome);
      if ('item' in outcome) {
        valid.push(outcome);
        byId.set(item.id, outcome);
      } else {
        errors.push(outcome);
      }
    }
    views.set(kind, { list: Object.freeze(valid), byId });
  }
  return new Snapshot(revision, views, errors, outcomes);
}
