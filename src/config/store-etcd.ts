// etcd v3 ConfigStore: one paged full read of `<prefix>/`, then one prefix watch from revision+1. Any watch
// failure (compaction, etcd restart, lost connection) leads to a full re-read diffed against the view, so
// unchanged items keep their identity, then a new watch. While etcd is unreachable the view is kept and the
// loop retries with capped exponential backoff; nothing here throws out of a timer.
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { Etcd3, type IKeyValue, type IOptions, type IResponseHeader, type IWatchResponse, type Watcher } from 'etcd3';
import { SwitchyardError, isSwitchyardError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { registerEtcdSource } from '../observability/sources.ts';
import type { FieldCodec } from './encryption.ts';
import { itemKey, parseKey, type JsonObject, type Kind, type StoredItem } from './resources.ts';
import type { ConfigEvent, ConfigStore, WriteOptions, WriteResult } from './store.ts';
import { ItemView, Sleeper, backoffMs, decodeValue, makeItem, padId, replaceView } from './store-common.ts';

export interface EtcdStoreOptions {
  hosts: string[];
  prefix: string;
  /** Per-call deadline for unary requests (range, put, txn...). */
  timeoutSec: number;
  user?: string;
  password?: string;
  /** cert/key/ca: file paths or inline PEM. */
  tls?: { cert?: string; key?: string; ca?: string; verify?: boolean; sni?: string };
  logger: Logger;
  /** Extra attempts of the first full read before start() rejects (APISIX `startup_retry`, default 2). */
  startupRetries?: number;
  /**
   * Encryption at rest (APISIX data_encryption): values are decoded when read (the view, events, fetch and
   * delete results hold plaintext) and encoded on put.
   */
  codec?: FieldCodec;
}

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/** Retries and circuit breaking are this store's job (the watch loop), not the client's: a retried put could
 * apply twice and a broken circuit would delay recovery after an etcd restart. */
const passThrough = {
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
  execute: <T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> =>
    Promise.resolve().then(() => fn({ signal: signal ?? new AbortController().signal })),
} as unknown as Policy;

const RANGE_PAGE = 500;

function pem(v: string): Buffer {
  return v.includes('-----BEGIN') ? Buffer.from(v) : readFileSync(v);
}

/** The first key after every key starting with `p` (etcd prefix range end). */
function prefixEnd(p: Buffer): Buffer {
  const end = Buffer.from(p);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

function rev(h: IResponseHeader | undefined): number {
  return h ? Number(h.revision) : 0;
}

export class EtcdStore extends EventEmitter implements ConfigStore {
  readonly backend = 'etcd' as const;
  readonly prefix: string;
  private readonly opts: EtcdStoreOptions;
  private readonly log: Logger;
  private readonly client: Etcd3;
  private readonly view = new ItemView();
  private readonly sleeper = new Sleeper();
  private rev = 0;
  private isReady = false;
  private closed = false;
  private watcher: Watcher | null = null;
  /** Ends the current watchUntilBroken() wait. */
  private breakWatch: ((reason: string) => void) | null = null;
  private loop: Promise<void> | null = null;
  /** Undoes the registration as a metrics source (etcd_reachable, etcd_modify_indexes). */
  private unregisterMetrics: (() => void) | null = null;

  constructor(opts: EtcdStoreOptions) {
    super();
    this.opts = opts;
    this.prefix = opts.prefix.replace(/\/+$/, '');
    this.log = opts.logger;
    const timeoutMs = Math.max(1, opts.timeoutSec) * 1000;
    const tls = opts.tls;
    if (tls && tls.verify === false) {
      this.log.warn('etcd tls.verify=false is not supported by the gRPC client; the server certificate is verified');
    }
    const options: IOptions = {
      hosts: opts.hosts,
      dialTimeout: timeoutMs,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
      faultHandling: { global: passThrough, host: () => passThrough },
      grpcOptions: {
        'grpc.initial_reconnect_backoff_ms': 500,
        'grpc.max_reconnect_backoff_ms': 4000,
        'grpc.keepalive_time_ms': 15_000,
        'grpc.keepalive_timeout_ms': 5000,
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
        ...(tls?.sni ? { 'grpc.ssl_target_name_override': tls.sni } : {}),
      },
    };
    if (tls && (tls.ca || tls.cert || tls.key)) {
      options.credentials = {
        rootCertificate: tls.ca ? pem(tls.ca) : (undefined as unknown as Buffer),
        privateKey: tls.key ? pem(tls.key) : undefined,
        certChain: tls.cert ? pem(tls.cert) : undefined,
      };
    }
    if (opts.user) options.auth = { username: opts.user, password: opts.password ?? '' };
    this.client = new Etcd3(options);
  }

  get revision(): number {
    return this.rev;
  }

  get ready(): boolean {
    return this.isReady;
  }

  async start(): Promise<void> {
    if (this.loop || this.closed) throw new Error('EtcdStore.start() called twice or after close()');
    const retries = this.opts.startupRetries ?? 2;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.reload(false);
        break;
      } catch (err) {
        if (attempt >= retries || this.closed) {
          throw new SwitchyardError('SWY_ERR_STORE_UNAVAILABLE', `etcd ${this.opts.hosts.join(',')}: ${(err as Error).message}`, { cause: err });
        }
        this.log.warn({ err: (err as Error).message, attempt }, 'etcd: initial load failed, retrying');
        await this.sleeper.sleep(backoffMs(attempt));
      }
    }
    this.isReady = true;
    this.emit('ready');
    this.loop = this.run();
    this.unregisterMetrics = registerEtcdSource({
      reachable: () => this.reachable(),
      modifyIndexes: () => this.modifyIndexes(),
    });
  }

  /** One status round trip, bounded to 2 s (APISIX asks the server version on every scrape). */
  private async reachable(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), 2000);
    });
    try {
      return await Promise.race([this.client.maintenance.status().then(() => true, () => false), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Max modifiedIndex per etcd directory and the revision the view is at (APISIX X-Etcd-Index). */
  private modifyIndexes(): { kinds: Map<string, number>; revision: number } {
    const kinds = new Map<string, number>();
    for (const item of this.view.all()) {
      const dir = item.kind === 'credentials' ? 'consumers' : item.kind;
      if (item.modifiedIndex > (kinds.get(dir) ?? 0)) kinds.set(dir, item.modifiedIndex);
    }
    return { kinds, revision: this.rev };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unregisterMetrics?.();
    this.sleeper.cancelAll();
    this.breakWatch?.('closed');
    this.client.close();
    await this.loop?.catch(() => undefined);
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

  // ---- follow loop ----------------------------------------------------------------------------------------

  /** Watches until the watch breaks, then re-reads everything and watches again; ends on close(). */
  private async run(): Promise<void> {
    let failures = 0;
    let needReload = false;
    while (!this.closed) {
      try {
        if (needReload) {
          await this.reload(true);
          failures = 0;
        }
        needReload = true;
        const reason = await this.watchUntilBroken();
        if (this.closed) break;
        this.log.warn({ reason, revision: this.rev }, 'etcd: watch broken, resyncing');
      } catch (err) {
        if (this.closed) break;
        this.log.warn({ err: (err as Error).message, attempt: failures }, 'etcd: resync failed, retrying');
        await this.sleeper.sleep(backoffMs(failures++));
        continue;
      }
      // A short pause so a flapping watch cannot spin.
      await this.sleeper.sleep(backoffMs(0, 100, 100));
    }
  }

  /** Full paged read at one revision; diffs it into the view. */
  private async reload(resync: boolean): Promise<void> {
    const start = Buffer.from(this.prefix + '/');
    const end = prefixEnd(start);
    const fresh = new Map<string, StoredItem>();
    const keep = new Set<string>();
    let key = start;
    let atRev: number | undefined;
    for (let page = 0; page < 1_000_000; page++) {
      const res = await this.client.kv.range({ key, range_end: end, limit: RANGE_PAGE, ...(atRev ? { revision: atRev } : {}) });
      atRev ??= rev(res.header);
      // A revision below ours means etcd lost or replaced its data: equal revisions no longer prove equal values.
      const strict = atRev < this.rev;
      for (const kv of res.kvs) this.collect(kv, fresh, keep, strict);
      if (!res.more || res.kvs.length === 0) break;
      key = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
    }
    if (this.closed) return;
    const events = replaceView(this.view, fresh, keep);
    this.rev = atRev ?? 0;
    if (events.length > 0) this.emit('change', events, this.rev);
    if (resync) {
      this.log.info({ revision: this.rev, changes: events.length }, 'etcd: resynced');
      this.emit('resync', this.rev);
    } else {
      this.log.info({ revision: this.rev, items: this.view.size }, 'etcd: loaded');
    }
  }

  private collect(kv: IKeyValue, fresh: Map<string, StoredItem>, keep: Set<string>, strict: boolean): void {
    const key = kv.key.toString();
    const old = this.view.getByKey(key);
    const same = old && old.createdIndex === Number(kv.create_revision) && old.modifiedIndex === Number(kv.mod_revision);
    if (same && !strict) {
      fresh.set(key, old);
      return;
    }
    const item = this.decode(kv);
    if (item) fresh.set(key, same && JSON.stringify(item.value) === JSON.stringify(old.value) ? old : item);
    else if (old) keep.add(key);
  }

  /** A StoredItem from a KV (secret fields decrypted), or null for non-resource keys and invalid values. */
  private decode(kv: IKeyValue): StoredItem | null {
    const key = kv.key.toString();
    const parsed = parseKey(this.prefix, key);
    if (!parsed) return null;
    const v = decodeValue(kv.value.toString());
    if (!v.ok) {
      this.log.error({ key, error: v.error }, 'etcd: invalid JSON value skipped');
      return null;
    }
    const value = this.opts.codec ? this.opts.codec.decode(parsed.kind, v.value, parsed.id) : v.value;
    return makeItem(this.prefix, key, value, Number(kv.create_revision), Number(kv.mod_revision));
  }

  /** Resolves with a reason once the watch is disconnected, cancelled by etcd, or the store closes. */
  private watchUntilBroken(): Promise<string> {
    const start = Buffer.from(this.prefix + '/');
    const watcher = this.client
      .watch()
      .inRange({ start, end: prefixEnd(start) })
      .startRevision(String(this.rev + 1))
      .watcher();
    this.watcher = watcher;
    return new Promise<string>((resolve) => {
      const done = (reason: string) => {
        if (this.watcher === watcher) this.dropWatcher();
        this.breakWatch = null;
        resolve(reason);
      };
      this.breakWatch = done;
      watcher.on('data', (res: IWatchResponse) => {
        try {
          if (this.watcher === watcher) this.applyWatch(res);
        } catch (err) {
          this.log.error({ err: (err as Error).message }, 'etcd: failed to apply watch events');
          done('apply failed');
        }
      });
      watcher.on('disconnected', (err: Error) => done(`disconnected: ${err.message}`));
      // Cancelled by the server (compaction, auth...): etcd3 has already detached this watcher.
      watcher.on('error', (err: Error) => {
        if (this.watcher === watcher) this.watcher = null;
        watcher.removeAllListeners();
        watcher.on('error', () => undefined);
        this.breakWatch = null;
        resolve(`cancelled: ${err.message}`);
      });
      watcher.on('end', () => done('ended'));
      if (this.closed) done('closed');
    });
  }

  private dropWatcher(): void {
    const w = this.watcher;
    if (!w) return;
    this.watcher = null;
    w.removeAllListeners();
    w.on('error', () => undefined);
    w.cancel().catch(() => undefined);
  }

  private applyWatch(res: IWatchResponse): void {
    const events: ConfigEvent[] = [];
    let last = this.rev;
    for (const ev of res.events) {
      const kv = ev.kv;
      const key = kv.key.toString();
      last = Math.max(last, Number(kv.mod_revision));
      if (ev.type === 'Delete') {
        const old = this.view.remove(key);
        if (old) events.push({ type: 'delete', kind: old.kind, id: old.id });
        continue;
      }
      const item = this.decode(kv);
      if (!item) continue;
      this.view.set(item);
      events.push({ type: 'put', kind: item.kind, id: item.id, item });
    }
    if (res.events.length === 0) last = Math.max(last, rev(res.header));
    this.rev = last;
    if (events.length > 0) this.emit('change', events, this.rev);
  }

  // ---- writes and direct reads -----------------------------------------------------------------------------

  private unavailable(err: unknown, what: string): SwitchyardError {
    if (isSwitchyardError(err)) return err;
    return new SwitchyardError('SWY_ERR_STORE_UNAVAILABLE', `${what}: ${(err as Error).message}`, { cause: err });
  }

  async put(kind: Kind, id: string, value: JsonObject, opts: WriteOptions = {}): Promise<WriteResult> {
    const key = itemKey(this.prefix, kind, id);
    const keyBuf = Buffer.from(key);
    const stored = this.opts.codec ? this.opts.codec.encode(kind, value, id) : value;
    const valueBuf = Buffer.from(JSON.stringify(stored));
    try {
      let lease: string | undefined;
      if (opts.ttl !== undefined && opts.ttl > 0) {
        lease = (await this.client.leaseClient.leaseGrant({ TTL: Math.ceil(opts.ttl) })).ID;
      }
      const req = { key: keyBuf, value: valueBuf, prev_kv: true, ...(lease ? { lease } : {}) };
      let header: IResponseHeader;
      let prev: IKeyValue | null | undefined;
      if (opts.expectModifiedIndex !== undefined) {
        const res = await this.client.kv.txn({
          compare: [{ key: keyBuf, target: 'Mod', result: 'Equal', mod_revision: String(opts.expectModifiedIndex) }],
          success: [{ request_put: req }],
          failure: [],
        });
        if (!res.succeeded) throw new SwitchyardError('SWY_ERR_STORE_CONFLICT');
        header = res.header;
        prev = res.responses[0]?.response_put?.prev_kv;
      } else {
        const res = await this.client.kv.put(req);
        header = res.header;
        prev = res.prev_kv;
      }
      const r = rev(header);
      const created = prev && prev.key && prev.key.length > 0 ? Number(prev.create_revision) : r;
      const item = makeItem(this.prefix, key, value, created, r);
      if (!item) throw new Error(`not a resource key: ${key}`);
      return { created: !(prev && prev.key && prev.key.length > 0), item };
    } catch (err) {
      throw this.unavailable(err, `put ${key}`);
    }
  }

  async delete(kind: Kind, id: string): Promise<StoredItem | undefined> {
    const key = itemKey(this.prefix, kind, id);
    try {
      const res = await this.client.kv.deleteRange({ key: Buffer.from(key), prev_kv: true });
      const prev = res.prev_kvs[0];
      if (!prev) return undefined;
      return this.decode(prev) ?? undefined;
    } catch (err) {
      throw this.unavailable(err, `delete ${key}`);
    }
  }

  async deletePrefix(kind: Kind, idPrefix: string): Promise<number> {
    const start = Buffer.from(itemKey(this.prefix, kind, idPrefix) + '/');
    try {
      const res = await this.client.kv.deleteRange({ key: start, range_end: prefixEnd(start) });
      return Number(res.deleted);
    } catch (err) {
      throw this.unavailable(err, `delete prefix ${start.toString()}`);
    }
  }

  async nextId(): Promise<string> {
    try {
      const res = await this.client.kv.put({ key: Buffer.from(`${this.prefix}/gen_id`), value: Buffer.from('0') });
      return padId(rev(res.header));
    } catch (err) {
      throw this.unavailable(err, 'gen_id');
    }
  }

  async fetch(kind: Kind, id: string): Promise<StoredItem | undefined> {
    const key = itemKey(this.prefix, kind, id);
    try {
      const res = await this.client.kv.range({ key: Buffer.from(key) });
      const kv = res.kvs[0];
      return kv ? (this.decode(kv) ?? undefined) : undefined;
    } catch (err) {
      throw this.unavailable(err, `get ${key}`);
    }
  }

  async fetchList(kind: Kind): Promise<StoredItem[]> {
    const start = Buffer.from(itemKey(this.prefix, kind, ''));
    const end = prefixEnd(start);
    const out: StoredItem[] = [];
    try {
      let key = start;
      let atRev: number | undefined;
      for (let page = 0; page < 1_000_000; page++) {
        const res = await this.client.kv.range({ key, range_end: end, limit: RANGE_PAGE, ...(atRev ? { revision: atRev } : {}) });
        atRev ??= rev(res.header);
        for (const kv of res.kvs) {
          const item = this.decode(kv);
          if (item && item.kind === kind) out.push(item);
        }
        if (!res.more || res.kvs.length === 0) break;
        key = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
      }
    } catch (err) {
      throw this.unavailable(err, `list ${start.toString()}`);
    }
    return out;
  }
}

/** Factory form of `new EtcdStore(opts)` followed by start(). */
export async function createEtcdStore(opts: EtcdStoreOptions): Promise<ConfigStore> {
  const store = new EtcdStore(opts);
  await store.start();
  return store;
}
