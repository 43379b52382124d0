// Item bookkeeping of the standalone store (store-file.ts) when a whole configuration arrives at once (a file
// reload, PUT /apisix/admin/configs): which items keep their StoredItem object, and the generated-id counter.
import type { FieldCodec } from './encryption.ts';
import { itemKey, type StoredItem } from './resources.ts';
import type { StandaloneItem } from './standalone-format.ts';
import { makeItem, type ItemView } from './store-common.ts';

const NUMERIC_ID = /^\d{1,30}$/;

/**
 * Adds `items` to `fresh` by key: an item whose value JSON equals the view's keeps the view's StoredItem (its
 * identity tells consumers nothing changed), any other is a new item at revision `rev`. `codec` decodes the
 * values read from a file.
 */
export function freshItems(
  fresh: Map<string, StoredItem>,
  view: ItemView,
  prefix: string,
  items: readonly StandaloneItem[],
  rev: number,
  codec?: FieldCodec,
): void {
  for (const { kind, id, value: raw } of items) {
    const key = itemKey(prefix, kind, id);
    const value = codec ? codec.decode(kind, raw, id) : raw;
    const old = view.getByKey(key);
    if (old && JSON.stringify(old.value) === JSON.stringify(value)) {
      fresh.set(key, old);
      continue;
    }
    const item = makeItem(prefix, key, value, old ? old.createdIndex : rev, rev);
    if (item) fresh.set(key, item);
  }
}

export function maxBig(...xs: bigint[]): bigint {
  let m = 0n;
  for (const x of xs) if (x > m) m = x;
  return m;
}

/** The largest numeric id of `items` (0 without one): generated ids continue above it. */
export function maxNumericId(items: readonly { id: string }[]): bigint {
  let m = 0n;
  for (const it of items) {
    if (NUMERIC_ID.test(it.id)) {
      const v = BigInt(it.id);
      if (v > m) m = v;
    }
  }
  return m;
}
