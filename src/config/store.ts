// ConfigStore: the one seam between configuration backends (etcd, standalone file) and the rest of the
// gateway. Both backends behave the same: a full load, then batched change events with a revision.
import type { EventEmitter } from 'node:events';
import type { JsonObject, Kind, StoredItem } from './resources.ts';

export interface ConfigEvent {
  readonly type: 'put' | 'delete';
  readonly kind: Kind;
  readonly id: string;
  /** Present for 'put'. */
  readonly item?: StoredItem;
}

export interface WriteOptions {
  /** Seconds; etcd lease (file backend: expiry timer). */
  ttl?: number;
  /** Compare-and-swap on the item's modifiedIndex (PATCH). 0 = must not exist. */
  expectModifiedIndex?: number;
}

export interface WriteResult {
  readonly created: boolean;
  readonly item: StoredItem;
}

/**
 * Events:
 *  - 'change' (events: ConfigEvent[], revision: number): applied to the in-memory view before emitting.
 *  - 'resync' (revision: number): the view was reloaded in full (compaction, backend restart, file reload);
 *     listeners should rebuild from all(); unchanged items keep their identity (same object).
 *  - 'ready': first full load done.
 *  - 'error' is never emitted; backend failures are logged and retried.
 */
export interface ConfigStore extends EventEmitter {
  readonly backend: 'etcd' | 'file';
  readonly prefix: string;
  readonly revision: number;
  readonly ready: boolean;
  /** Loads everything, then follows changes. Resolves after the first full load (or rejects when it fails at start). */
  start(): Promise<void>;
  close(): Promise<void>;
  /** In-memory view, always consistent with the last emitted event. */
  get(kind: Kind, id: string): StoredItem | undefined;
  list(kind: Kind): StoredItem[];
  all(): StoredItem[];
  /** Writes. Throw StoreError (see errors.ts) on conflict/unavailable backend. */
  put(kind: Kind, id: string, value: JsonObject, opts?: WriteOptions): Promise<WriteResult>;
  delete(kind: Kind, id: string): Promise<StoredItem | undefined>;
  /** Deletes every key below `<prefix>/<dir>/<id>/` (consumer credentials). */
  deletePrefix(kind: Kind, idPrefix: string): Promise<number>;
  /** A new monotonic 20-digit zero-padded id (APISIX's /gen_id behaviour). */
  nextId(): Promise<string>;
  /** A fresh read from the backend, bypassing the cached view (Admin API reads). */
  fetch(kind: Kind, id: string): Promise<StoredItem | undefined>;
  fetchList(kind: Kind): Promise<StoredItem[]>;
}
