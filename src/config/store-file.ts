// Standalone-file ConfigStore (conf/apisix.yaml or apisix.json, APISIX standalone format).
//
// Reload: the file's (ino, size, mtime) is polled every pollMs, with fs.watch on the directory as a hint. A
// changed text is parsed in full and diffed against the view: unchanged items (same value JSON) keep their
// StoredItem object; only differences are emitted, then 'resync'. An invalid file keeps the last good view and
// logs the precise error once per distinct content.
//
// Writable mode (traditional role, yaml provider; the Admin API writes): mutations are group-committed on one
// queue: the writes that arrived meanwhile are checked in order, the whole config is rendered once from cached
// per-item text (standalone-render.ts), written atomically (temp file in the same dir, fsync, rename, fsync
// dir), and only then applied to the view and emitted as one batch. The text we wrote is remembered, so our
// own write is not re-applied as a foreign change. Generated ids: max(switchyard_gen_id in the file, largest numeric item id) + 1; the counter is
// persisted with the next write. ttl expiry uses in-process timers and does not survive a restart.
import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { SwitchyardError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { FieldCodec } from './encryption.ts';
import { itemKey, type JsonObject, type Kind, type StoredItem } from './resources.ts';
import type { ConfigEvent, ConfigStore, WriteOptions, WriteResult } from './store.ts';
import { ItemView, makeItem, padId, replaceView } from './store-common.ts';
import { fileSig, readBounded, sameSig, writeAtomic, type FileSig } from './store-file-io.ts';
import { freshItems, maxBig, maxNumericId } from './store-file-items.ts';
import {
  STANDALONE_COLLECTIONS,
  isYamlFile,
  itemsFromRoot,
  parseStandalone,
  standaloneValue,
} from './standalone-format.ts';
import { StandaloneRenderer } from './standalone-render.ts';

/** State of the API-driven standalone mode (APISIX admin/standalone.lua): per-collection versions and metadata. */
export interface ConfigsState {
  /** `<collection>` -> conf_version; collections never set are 0. */
  readonly confVersions: ReadonlyMap<string, number>;
  /** The client's X-Digest of the last accepted PUT, null before the first. */
  readonly digest: string | null;
  /** Unix seconds of the last accepted PUT, null before the first. */
  readonly lastModified: number | null;
}

/** One PUT /apisix/admin/configs, already validated: `collections` maps a collection to its new items or `keep`. */
export interface ConfigsUpdate {
  readonly collections: ReadonlyMap<string, readonly JsonObject[] | 'keep'>;
  readonly confVersions: ReadonlyMap<string, number>;
  readonly digest: string;
  readonly lastModified: number;
}

export interface FileStoreOptions {
  path: string;
  logger: Logger;
  writable: boolean;
  /** Poll interval, default 1000 ms (APISIX polls apisix.yaml every second). */
  pollMs?: number;
  /** Key prefix of the items (their `key`), default /apisix. */
  prefix?: string;
  /** Files larger than this are rejected, default 64 MiB. */
  maxBytes?: number;
  /**
   * Encryption at rest (apisix.data_encryption: SSL private keys and plugin encrypt_fields). Values are decoded
   * when the file is loaded (the view holds plaintext; values no keyring entry decrypts, such as plaintext
   * written by hand, are kept as they are) and encoded when it is written. APISIX itself encrypts for etcd
   * only; a file Switchyard wrote with fields encrypted needs the same keyring wherever it is read.
   */
  codec?: FieldCodec;
}

/** A write's view of the batch it runs in: the view with the batch's earlier changes applied. */
interface BatchTx {
  get(key: string): StoredItem | undefined;
  keysWithPrefix(start: string): string[];
  /** The revision of the last change so far; a write that changes something takes the next one. */
  revision: number;
  readonly changes: { key: string; item: StoredItem | null; ttl?: number | undefined }[];
}

/** One queued write: `run` checks and records its changes synchronously, or throws to fail alone. */
interface Mutation<T> {
  run(tx: BatchTx): T;
  resolve(v: T): void;
  reject(err: unknown): void;
}

export class FileStore extends EventEmitter implements ConfigStore {
  readonly backend = 'file' as const;
  readonly prefix: string;
  private readonly file: string;
  private readonly format: 'yaml' | 'json';
  private readonly log: Logger;
  private readonly writable: boolean;
  private readonly pollMs: number;
  private readonly maxBytes: number;
  private readonly codec: FieldCodec | undefined;
  private readonly view = new ItemView();
  private readonly ttlTimers = new Map<string, NodeJS.Timeout>();
  private rev = 0;
  private genId = 0n;
  private confVersions = new Map<string, number>();
  private digest: string | null = null;
  private lastModified: number | null = null;
  private isReady = false;
  private closed = false;
  /** Signature and text of the content last applied or written by us. */
  private sig: FileSig | null = null;
  private text: string | null = null;
  /** The last invalid text, so its error is logged once. */
  private badText: string | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly renderer: StandaloneRenderer;
  private pending: Mutation<unknown>[] = [];
  private flushQueued = false;
  private checking = false;
  private pollTimer: NodeJS.Timeout | null = null;
  private hintTimer: NodeJS.Timeout | null = null;
  private watcher: FSWatcher | null = null;

  constructor(opts: FileStoreOptions) {
    super();
    this.file = path.resolve(opts.path);
    this.format = isYamlFile(this.file) ? 'yaml' : 'json';
    this.log = opts.logger;
    this.writable = opts.writable;
    this.pollMs = opts.pollMs ?? 1000;
    this.maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
    this.codec = opts.codec?.active ? opts.codec : undefined;
    this.renderer = new StandaloneRenderer(this.format, this.codec);
    this.prefix = (opts.prefix ?? '/apisix').replace(/\/+$/, '');
  }

  get revision(): number {
    return this.rev;
  }

  get ready(): boolean {
    return this.isReady;
  }

  async start(): Promise<void> {
    if (this.isReady || this.closed) throw new Error('FileStore.start() called twice or after close()');
    if (this.writable && this.codec?.publicKeyring) {
      this.log.warn(
        { file: this.file },
        "standalone: secret fields are encrypted with APISIX's published default keyring, which protects nothing; set apisix.data_encryption.keyring in config.yaml",
      );
    }
    const sig = await fileSig(this.file);
    if (!sig) {
      this.log.warn({ file: this.file }, 'standalone: file not found, starting with an empty configuration');
      this.rev = 1;
      if (this.writable) await this.persist(this.view.all());
    } else {
      const text = await readBounded(this.file, sig, this.maxBytes);
      const parsed = parseStandalone(text, this.file);
      if (!parsed.ok) throw new SwitchyardError('SWY_ERR_CONFIG_INVALID', parsed.error);
      this.applyParsed(parsed, text, sig, false);
    }
    this.isReady = true;
    this.emit('ready');
    this.pollTimer = setInterval(() => this.check(), this.pollMs);
    this.pollTimer.unref();
    try {
      this.watcher = watch(path.dirname(this.file), { persistent: false }, (_ev, name) => {
        if (name === null || name === path.basename(this.file)) this.hint();
      });
      this.watcher.on('error', () => this.stopWatcher());
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'standalone: fs.watch unavailable, polling only');
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.hintTimer) clearTimeout(this.hintTimer);
    this.stopWatcher();
    for (const t of this.ttlTimers.values()) clearTimeout(t);
    this.ttlTimers.clear();
    await this.queue.catch(() => undefined);
  }

  get(kind: Kind, id: string): StoredItem | undefined {
    return this.view.get(kind, id);
  }

  list(kind: Kind): StoredItem[] {
    return this.view.list(kind);
  }

  all(): StoredItem[] {
    return this.view.all();
  }

  async fetch(kind: Kind, id: string): Promise<StoredItem | undefined> {
    return this.view.get(kind, id);
  }

  async fetchList(kind: Kind): Promise<StoredItem[]> {
    return this.view.list(kind);
  }

  // ---- reload ----------------------------------------------------------------------------------------------

  private stopWatcher(): void {
    this.watcher?.close();
    this.watcher = null;
  }

  /** fs.watch fires several times per write; coalesce into one check shortly after. */
  private hint(): void {
    if (this.closed || this.hintTimer) return;
    this.hintTimer = setTimeout(() => {
      this.hintTimer = null;
      this.check();
    }, 50);
    this.hintTimer.unref();
  }

  private check(): void {
    if (this.closed || this.checking) return;
    this.checking = true;
    this.enqueue(() => this.reloadIfChanged())
      .catch((err: unknown) => this.log.error({ file: this.file, err: (err as Error).message }, 'standalone: reload failed'))
      .finally(() => {
        this.checking = false;
      });
  }

  private async reloadIfChanged(): Promise<void> {
    if (this.closed) return;
    const sig = await fileSig(this.file);
    if (!sig) {
      if (this.sig) this.log.warn({ file: this.file }, 'standalone: file disappeared; keeping the last configuration');
      this.sig = null;
      return;
    }
    if (sameSig(this.sig, sig)) return;
    // Recorded first: a file that cannot be read or parsed is retried only once it changes again.
    this.sig = sig;
    const text = await readBounded(this.file, sig, this.maxBytes);
    if (text === this.text || text === this.badText) return;
    const parsed = parseStandalone(text, this.file);
    if (!parsed.ok) {
      this.badText = text;
      this.log.error({ file: this.file, error: parsed.error }, 'standalone: invalid file; keeping the last good configuration');
      return;
    }
    this.applyParsed(parsed, text, sig, true);
  }

  private applyParsed(
    parsed: Extract<ReturnType<typeof parseStandalone>, { ok: true }>,
    text: string,
    sig: FileSig,
    resync: boolean,
  ): void {
    const next = this.rev + 1;
    const fresh = new Map<string, StoredItem>();
    freshItems(fresh, this.view, this.prefix, parsed.items, next, this.codec);
    for (const w of parsed.warnings) this.log.warn({ file: this.file }, `standalone: ${w}`);
    this.genId = maxBig(this.genId, parsed.genId, maxNumericId(parsed.items));
    this.confVersions = new Map(parsed.confVersions);
    this.text = text;
    this.sig = sig;
    this.badText = null;
    const events = replaceView(this.view, fresh, new Set());
    for (const ev of events) this.clearTtl(itemKey(this.prefix, ev.kind, ev.id));
    this.rev = next;
    if (events.length > 0) this.emit('change', events, next);
    if (resync) {
      this.log.info({ file: this.file, revision: next, changes: events.length }, 'standalone: reloaded');
      this.emit('resync', next);
    } else {
      this.log.info({ file: this.file, revision: next, items: this.view.size }, 'standalone: loaded');
    }
  }

  // ---- writes ----------------------------------------------------------------------------------------------

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const run = this.queue.then(op, op);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private assertWritable(): void {
    if (!this.writable) throw new SwitchyardError('SWY_ERR_STORE_READONLY', this.file);
    if (this.closed) throw new SwitchyardError('SWY_ERR_STORE_UNAVAILABLE', 'store closed');
  }

  /** Writes `items` (plus the id counter) atomically and records the result as our own content. */
  private async persist(items: Iterable<StoredItem>): Promise<void> {
    const text = this.renderer.render(items, { genId: this.genId, confVersions: this.confVersions });
    const sig = await writeAtomic(this.file, text, this.sig !== null);
    this.text = text;
    this.sig = sig;
  }

  /**
   * Queues one mutation for the next group commit. Every write of a batch is checked in arrival order
   * against the view plus the batch's earlier writes, the survivors are written with one atomic file write
   * (one fsync), then applied and emitted as one change batch. Writes that arrive while a batch is being
   * written form the next batch, so concurrent Admin API writes share the cost of rendering and fsync.
   */
  private mutate<T>(run: Mutation<T>['run']): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ run, resolve, reject } as Mutation<unknown>);
      if (this.flushQueued) return;
      this.flushQueued = true;
      this.enqueue(() => this.flush()).catch((err: unknown) => this.log.error({ file: this.file, err }, 'standalone: write batch failed'));
    });
  }

  private async flush(): Promise<void> {
    this.flushQueued = false;
    const batch = this.pending.splice(0);
    if (this.closed) {
      for (const m of batch) m.reject(new SwitchyardError('SWY_ERR_STORE_UNAVAILABLE', 'store closed'));
      return;
    }
    const overlay = new Map<string, StoredItem | null>();
    const tx: BatchTx = {
      get: (key) => (overlay.has(key) ? (overlay.get(key) ?? undefined) : this.view.getByKey(key)),
      keysWithPrefix: (start) => {
        const keys = new Set<string>();
        for (const it of this.view.all()) if (it.key.startsWith(start)) keys.add(it.key);
        for (const [k, v] of overlay) {
          if (!k.startsWith(start)) continue;
          if (v) keys.add(k);
          else keys.delete(k);
        }
        return [...keys];
      },
      revision: this.rev,
      changes: [],
    };
    const done: { m: Mutation<unknown>; result: unknown; from: number; to: number }[] = [];
    for (const m of batch) {
      const from = tx.changes.length;
      const rev0 = tx.revision;
      try {
        const result = m.run(tx);
        for (let i = from; i < tx.changes.length; i++) overlay.set(tx.changes[i]!.key, tx.changes[i]!.item);
        done.push({ m, result, from, to: tx.changes.length });
      } catch (err) {
        tx.changes.length = from;
        tx.revision = rev0;
        m.reject(err);
      }
    }
    if (tx.changes.length > 0) {
      try {
        await this.persist(this.merged(overlay));
      } catch (err) {
        for (const d of done) d.m.reject(err);
        return;
      }
    }
    const events: ConfigEvent[] = [];
    for (const c of tx.changes) {
      if (c.item) {
        this.view.set(c.item);
        events.push({ type: 'put', kind: c.item.kind, id: c.item.id, item: c.item });
      } else {
        const old = this.view.remove(c.key);
        if (old) events.push({ type: 'delete', kind: old.kind, id: old.id });
      }
      this.clearTtl(c.key);
    }
    if (tx.revision !== this.rev) {
      this.rev = tx.revision;
      if (events.length > 0) this.emit('change', events, this.rev);
    }
    for (const d of done) {
      for (let i = d.from; i < d.to; i++) {
        const c = tx.changes[i]!;
        if (c.item && c.ttl !== undefined) this.armTtl(c.item, c.ttl);
      }
      d.m.resolve(d.result);
    }
  }

  /** The view with the batch applied, in the view's order (new keys last), without copying the view. */
  private *merged(overlay: ReadonlyMap<string, StoredItem | null>): Generator<StoredItem> {
    for (const it of this.view.all()) {
      if (!overlay.has(it.key)) yield it;
      else {
        const next = overlay.get(it.key);
        if (next) yield next;
      }
    }
    for (const [key, next] of overlay) if (next && !this.view.getByKey(key)) yield next;
  }

  async put(kind: Kind, id: string, value: JsonObject, opts: WriteOptions = {}): Promise<WriteResult> {
    this.assertWritable();
    const key = itemKey(this.prefix, kind, id);
    const stored = standaloneValue(kind, id, value);
    return await this.mutate((tx) => {
      const old = tx.get(key);
      if (opts.expectModifiedIndex !== undefined && (old?.modifiedIndex ?? 0) !== opts.expectModifiedIndex) {
        throw new SwitchyardError('SWY_ERR_STORE_CONFLICT');
      }
      const r = ++tx.revision;
      const item = makeItem(this.prefix, key, stored, old ? old.createdIndex : r, r);
      if (!item) throw new SwitchyardError('SWY_ERR_CONFIG_INVALID', `invalid ${kind} id "${id}"`);
      tx.changes.push({ key, item, ttl: opts.ttl !== undefined && opts.ttl > 0 ? opts.ttl : undefined });
      return { created: !old, item };
    });
  }

  async delete(kind: Kind, id: string): Promise<StoredItem | undefined> {
    this.assertWritable();
    const key = itemKey(this.prefix, kind, id);
    return await this.mutate((tx) => {
      const old = tx.get(key);
      if (!old) return undefined;
      tx.revision++;
      tx.changes.push({ key, item: null });
      return old;
    });
  }

  async deletePrefix(kind: Kind, idPrefix: string): Promise<number> {
    this.assertWritable();
    const start = itemKey(this.prefix, kind, idPrefix) + '/';
    return await this.mutate((tx) => {
      const gone = tx.keysWithPrefix(start);
      if (gone.length === 0) return 0;
      tx.revision++;
      for (const key of gone) tx.changes.push({ key, item: null });
      return gone.length;
    });
  }

  /** Whether the Admin API may write (traditional role with the yaml provider). */
  get isWritable(): boolean {
    return this.writable;
  }

  configsState(): ConfigsState {
    return { confVersions: this.confVersions, digest: this.digest, lastModified: this.lastModified };
  }

  /**
   * Replaces whole collections at once (PUT /apisix/admin/configs). Items are numbered and checked like a file;
   * an error leaves everything unchanged. Unchanged items keep their identity, so only real differences are
   * emitted.
   */
  async replaceCollections(update: ConfigsUpdate): Promise<{ ok: true } | { ok: false; error: string }> {
    this.assertWritable();
    return await this.enqueue(async () => {
      const incoming: Record<string, JsonObject[]> = {};
      for (const [coll, items] of update.collections) {
        if (items !== 'keep') incoming[coll] = items.map(withoutModifiedIndex);
      }
      const parsed = itemsFromRoot(incoming, 'configs');
      if (!parsed.ok) return { ok: false, error: parsed.error.replace(/^configs: /, '') };
      const keep = new Set<string>();
      for (const [coll, items] of update.collections) if (items === 'keep') keep.add(coll);
      const next = this.rev + 1;
      const fresh = new Map<string, StoredItem>();
      for (const it of this.view.all()) {
        if (keep.has(it.kind === 'credentials' ? 'consumers' : it.kind)) fresh.set(it.key, it);
      }
      freshItems(fresh, this.view, this.prefix, parsed.items, next);
      const prevVersions = this.confVersions;
      this.confVersions = new Map(update.confVersions);
      try {
        await this.persist(Array.from(fresh.values()));
      } catch (err) {
        this.confVersions = prevVersions;
        throw err;
      }
      this.genId = maxBig(this.genId, maxNumericId(parsed.items));
      this.digest = update.digest;
      this.lastModified = update.lastModified;
      const events = replaceView(this.view, fresh, new Set());
      for (const ev of events) this.clearTtl(itemKey(this.prefix, ev.kind, ev.id));
      this.rev = next;
      if (events.length > 0) this.emit('change', events, next);
      this.log.info({ revision: next, changes: events.length }, 'standalone: configuration replaced through the Admin API');
      return { ok: true };
    });
  }

  async nextId(): Promise<string> {
    this.assertWritable();
    return await this.enqueue(async () => {
      this.genId = maxBig(this.genId, maxNumericId(this.view.all())) + 1n;
      return padId(this.genId);
    });
  }

  private clearTtl(key: string): void {
    const t = this.ttlTimers.get(key);
    if (t) {
      clearTimeout(t);
      this.ttlTimers.delete(key);
    }
  }

  /** Deletes `item` after ttl seconds unless it has been replaced or deleted meanwhile. */
  private armTtl(item: StoredItem, ttlSec: number): void {
    this.clearTtl(item.key);
    const timer = setTimeout(() => {
      this.ttlTimers.delete(item.key);
      if (this.closed) return;
      this.mutate((tx) => {
        if (tx.get(item.key) !== item) return false;
        tx.revision++;
        tx.changes.push({ key: item.key, item: null });
        return true;
      }).then(
        (expired) => expired && this.log.info({ key: item.key }, 'standalone: ttl expired'),
        (err: unknown) => this.log.error({ key: item.key, err }, 'standalone: ttl expiry failed'),
      );
    }, Math.min(ttlSec * 1000, 2 ** 31 - 1));
    timer.unref();
    this.ttlTimers.set(item.key, timer);
  }
}

/** APISIX lets /configs items carry `modifiedIndex`; the store keeps its own revisions instead. */
function withoutModifiedIndex(v: JsonObject): JsonObject {
  if (!Object.hasOwn(v, 'modifiedIndex')) return v;
  const out: JsonObject = {};
  for (const [k, x] of Object.entries(v)) if (k !== 'modifiedIndex') out[k] = x;
  return out;
}

export const CONFIGS_COLLECTIONS: readonly string[] = STANDALONE_COLLECTIONS;
