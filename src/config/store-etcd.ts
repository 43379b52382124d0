// etcd v3 ConfigStore: one paged full read of `<prefix>/`, then one prefix watch from revision+1. Calls go to
// any member of the cluster with fail-over (etcd-members.ts). A watch that breaks (member down, connection
// lost) resumes from the last revision on the next member after a short jittered pause, so no event is lost and
// nothing is re-read; only a watch cancelled by etcd (compaction) or a member behind our revision (etcd lost
// its data) leads to a full re-read diffed against the view, so unchanged items keep their identity. While no
// member is reachable the view is kept and the loop retries with bounded backoff; nothing throws out of a timer.
import { EventEmitter } from 'node:events';
import { Etcd3, type IKeyValue, type IResponseHeader, type IWatchResponse, type Watcher } from 'etcd3';
import { SwitchyardError, isSwitchyardError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { registerEtcdSource } from '../observability/sources.ts';
import type { FieldCodec } from './encryption.ts';
import { EtcdMembers, etcdClientOptions, prefixEnd, type EtcdConnection, type EtcdMember } from './etcd-members.ts';
import { itemKey, parseKey, type JsonObject, type Kind, type StoredItem } from './resources.ts';
import type { ConfigEvent, ConfigStore, WriteOptions, WriteResult } from './store.ts';
import { ItemView, Sleeper, backoffMs, decodeValue, makeItem, padId, replaceView } from './store-common.ts';

export interface EtcdStoreOptions extends EtcdConnection {
  /** Members of one etcd cluster; calls and the watch fail over between them. */
  hosts: string[];
  prefix: string;
  logger: Logger;
  /** Extra attempts of the first full read before start() rejects (APISIX `startup_retry`, default 2). */
  startupRetries?: number;
  /**
   * Encryption at rest (APISIX data_encryption): values are decoded when read (the view, events, fetch and
   * delete results hold plaintext) and encoded on put.
   */
  codec?: FieldCodec;
}

const RANGE_PAGE = 500;

interface WatchEnd {
  reason: string;
  /** etcd cancelled the watch (compaction...) or its events could not be applied: re-read everything. */
  cancelled: boolean;
  /** etcd had confirmed the watch before it broke. */
  connected: boolean;
}

function rev(h: IResponseHeader | undefined): number {
  return h ? Number(h.revision) : 0;
}

export class EtcdStore extends EventEmitter implements ConfigStore {
  readonly backend = 'etcd' as const;
  readonly prefix: string;
  /** `<prefix>/plugins`, APISIX's cluster-wide plugin list. */
  private readonly pluginsKey: string;
  private readonly opts: EtcdStoreOptions;
  private readonly log: Logger;
  private readonly members: EtcdMembers;
  private readonly view = new ItemView();
  private readonly sleeper = new Sleeper();
  private rev = 0;
  private isReady = false;
  private closed = false;
  private watcher: Watcher | null = null;
  private watchHost: string | null = null;
  /** Ends the current watchUntilBroken() wait. */
  private breakWatch: ((end: WatchEnd) => void) | null = null;
  private loop: Promise<void> | null = null;
  /** Undoes the registration as a metrics source (etcd_reachable, etcd_modify_indexes). */
  private unregisterMetrics: (() => void) | null = null;
  /** The raw value of `<prefix>/plugins` (APISIX's cluster-wide plugin list, config/plugin-list.ts), null while absent. */
  private pluginListRaw: string | null = null;

  constructor(opts: EtcdStoreOptions) {
    super();
    this.opts = opts;
    this.prefix = opts.prefix.replace(/\/+$/, '');
    this.pluginsKey = `${this.prefix}/plugins`;
    this.log = opts.logger;
    if (opts.tls?.verify === false) {
      this.log.warn('etcd tls.verify=false is not supported by the gRPC client; the server certificate is verified');
    }
    const options = etcdClientOptions(opts);
    this.members = new EtcdMembers(opts.hosts, (host) => new Etcd3({ ...options, hosts: [host] }));
  }

  get revision(): number {
    return this.rev;
  }

  get ready(): boolean {
    return this.isReady;
  }

  /** `<prefix>/plugins` as last read or watched, null while absent. Changes emit 'plugins' (raw or null). */
  get pluginList(): string | null {
    return this.pluginListRaw;
  }

  private setPluginList(raw: string | null): void {
    if (raw === this.pluginListRaw) return;
    this.pluginListRaw = raw;
    this.emit('plugins', raw);
  }

  async putPluginList(raw: string): Promise<void> {
    const key = this.pluginsKey;
    try {
      await this.members.call('idempotent', (c) => c.kv.put({ key: Buffer.from(key), value: Buffer.from(raw) }));
    } catch (err) {
      throw this.unavailable(err, `put ${key}`);
    }
  }

  /** The member the watch is on (diagnostics), null between watches. */
  get watching(): string | null {
    return this.watcher ? this.watchHost : null;
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
      return await Promise.race([this.members.call('idempotent', (c) => c.maintenance.status()).then(() => true, () => false), timeout]);
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
    this.breakWatch?.({ reason: 'closed', cancelled: false, connected: false });
    this.members.close();
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

  /**
   * Watches until the watch breaks, then resumes from the last revision on the next member (full re-read only
   * when etcd cancelled the watch or lost data); ends on close().
   */
  private async run(): Promise<void> {
    let failures = 0;
    let needReload = false;
    let lost: EtcdMember | undefined;
    while (!this.closed) {
      let member: EtcdMember;
      try {
        if (needReload) {
          await this.reload(true);
          needReload = false;
        }
        const picked = await this.watchMember(lost);
        if (picked === 'behind') {
          needReload = true;
          continue;
        }
        member = picked;
      } catch (err) {
        if (this.closed) break;
        this.log.warn({ err, attempt: failures, needReload }, 'etcd: no member answered, retrying');
        await this.sleeper.sleep(backoffMs(failures++, 200, 4000));
        continue;
      }
      const end = await this.watchUntilBroken(member);
      if (this.closed) break;
      this.log.warn({ reason: end.reason, host: member.host, revision: this.rev }, 'etcd: watch broken, resuming');
      if (end.cancelled) needReload = true;
      else this.members.failed(member);
      lost = member;
      if (end.connected) failures = 0;
      // Jitter spreads the gateways that lost the same member; consecutive failures back off (bounded).
      await this.sleeper.sleep(failures === 0 ? Math.random() * 50 : backoffMs(failures, 100, 2000));
      failures++;
    }
  }

  /**
   * The first member, `lost` last, that answers a linearizable count of the prefix at or after our revision;
   * 'behind' when it answers with a smaller revision (etcd lost or replaced its data: watching from our
   * revision would miss everything it has). Throws when no member answers.
   */
  private async watchMember(lost: EtcdMember | undefined): Promise<EtcdMember | 'behind'> {
    const start = Buffer.from(this.prefix + '/');
    let lastErr: unknown;
    for (const m of this.members.order(lost)) {
      try {
        const res = await m.client.kv.range({ key: start, range_end: prefixEnd(start), count_only: true });
        this.members.succeeded(m);
        return rev(res.header) < this.rev ? 'behind' : m;
      } catch (err) {
        this.members.failed(m);
        lastErr = err;
      }
    }
    throw lastErr;
  }

  /** Full paged read at one revision; diffs it into the view. */
  private async reload(resync: boolean): Promise<void> {
    const start = Buffer.from(this.prefix + '/');
    const end = prefixEnd(start);
    const fresh = new Map<string, StoredItem>();
    const keep = new Set<string>();
    const pluginsKey = this.pluginsKey;
    let pluginList: string | null = null;
    let key = start;
    let atRev: number | undefined;
    for (let page = 0; page < 1_000_000; page++) {
      const req = { key, range_end: end, limit: RANGE_PAGE, ...(atRev ? { revision: atRev } : {}) };
      const res = await this.members.call('idempotent', (c) => c.kv.range(req));
      atRev ??= rev(res.header);
      // A revision below ours means etcd lost or replaced its data: equal revisions no longer prove equal values.
      const strict = atRev < this.rev;
      for (const kv of res.kvs) {
        if (kv.key.toString() === pluginsKey) pluginList = kv.value.toString();
        else this.collect(kv, fresh, keep, strict);
      }
      if (!res.more || res.kvs.length === 0) break;
      key = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
    }
    if (this.closed) return;
    const events = replaceView(this.view, fresh, keep);
    this.rev = atRev ?? 0;
    this.setPluginList(pluginList);
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

  /** Resolves once the watch on `member` is disconnected, cancelled by etcd, or the store closes. */
  private watchUntilBroken(member: EtcdMember): Promise<WatchEnd> {
    const start = Buffer.from(this.prefix + '/');
    const watcher = member.client
      .watch()
      .inRange({ start, end: prefixEnd(start) })
      .startRevision(String(this.rev + 1))
      .watcher();
    this.watcher = watcher;
    this.watchHost = member.host;
    let connected = false;
    return new Promise<WatchEnd>((resolve) => {
      const done = (end: WatchEnd) => {
        if (this.watcher === watcher) this.dropWatcher();
        this.breakWatch = null;
        resolve(end);
      };
      this.breakWatch = done;
      watcher.on('connected', () => {
        connected = true;
      });
      watcher.on('data', (res: IWatchResponse) => {
        try {
          if (this.watcher === watcher) this.applyWatch(res);
        } catch (err) {
          this.log.error({ err }, 'etcd: failed to apply watch events');
          done({ reason: 'apply failed', cancelled: true, connected });
        }
      });
      watcher.on('disconnected', (err: Error) => done({ reason: `disconnected: ${err.message}`, cancelled: false, connected }));
      // Cancelled by the server (compaction, auth...): etcd3 has already detached this watcher.
      watcher.on('error', (err: Error) => {
        if (this.watcher === watcher) this.watcher = null;
        watcher.removeAllListeners();
        watcher.on('error', () => undefined);
        this.breakWatch = null;
        resolve({ reason: `cancelled: ${err.message}`, cancelled: true, connected });
      });
      watcher.on('end', () => done({ reason: 'ended', cancelled: false, connected }));
      if (this.closed) done({ reason: 'closed', cancelled: false, connected });
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
    const pluginsKey = this.pluginsKey;
    let last = this.rev;
    for (const ev of res.events) {
      const kv = ev.kv;
      const key = kv.key.toString();
      last = Math.max(last, Number(kv.mod_revision));
      if (key === pluginsKey) {
        this.setPluginList(ev.type === 'Delete' ? null : kv.value.toString());
        continue;
      }
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
        // A lease granted twice is harmless: the unused one expires with its TTL.
        const ttl = Math.ceil(opts.ttl);
        lease = (await this.members.call('idempotent', (c) => c.leaseClient.leaseGrant({ TTL: ttl }))).ID;
      }
      const req = { key: keyBuf, value: valueBuf, prev_kv: true, ...(lease ? { lease } : {}) };
      let r: number;
      let created: number;
      if (opts.expectModifiedIndex !== undefined) {
        const expect = String(opts.expectModifiedIndex);
        // The expected revision makes a resend safe: it can never apply twice. The failure branch reads the key
        // so a resend can recognise that the lost first attempt was applied.
        const out = await this.members.call('idempotent', async (c, maybeSent) => {
          const res = await c.kv.txn({
            compare: [{ key: keyBuf, target: 'Mod', result: 'Equal', mod_revision: expect }],
            success: [{ request_put: req }],
            failure: [{ request_range: { key: keyBuf } }],
          });
          if (res.succeeded) {
            const prev = res.responses[0]?.response_put?.prev_kv;
            return { rev: rev(res.header), prev: prev && prev.key.length > 0 ? Number(prev.create_revision) : undefined };
          }
          const now = res.responses[0]?.response_range?.kvs[0];
          if (!maybeSent || !now || !now.value.equals(valueBuf) || (lease && now.lease !== lease)) {
            throw new SwitchyardError('SWY_ERR_STORE_CONFLICT');
          }
          const c0 = Number(now.create_revision);
          return { rev: Number(now.mod_revision), prev: c0 === Number(now.mod_revision) ? undefined : c0 };
        });
        r = out.rev;
        created = out.prev ?? r;
      } else {
        const res = await this.members.call('once', (c) => c.kv.put(req));
        const prev = res.prev_kv;
        r = rev(res.header);
        created = prev && prev.key.length > 0 ? Number(prev.create_revision) : r;
      }
      const item = makeItem(this.prefix, key, value, created, r);
      if (!item) throw new Error(`not a resource key: ${key}`);
      return { created: created === r, item };
    } catch (err) {
      throw this.unavailable(err, `put ${key}`);
    }
  }

  async delete(kind: Kind, id: string): Promise<StoredItem | undefined> {
    const key = itemKey(this.prefix, kind, id);
    try {
      const res = await this.members.call('once', (c) => c.kv.deleteRange({ key: Buffer.from(key), prev_kv: true }));
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
      const res = await this.members.call('once', (c) => c.kv.deleteRange({ key: start, range_end: prefixEnd(start) }));
      return Number(res.deleted);
    } catch (err) {
      throw this.unavailable(err, `delete prefix ${start.toString()}`);
    }
  }

  async nextId(): Promise<string> {
    try {
      const res = await this.members.call('once', (c) => c.kv.put({ key: Buffer.from(`${this.prefix}/gen_id`), value: Buffer.from('0') }));
      return padId(rev(res.header));
    } catch (err) {
      throw this.unavailable(err, 'gen_id');
    }
  }

  async fetch(kind: Kind, id: string): Promise<StoredItem | undefined> {
    const key = itemKey(this.prefix, kind, id);
    try {
      const res = await this.members.call('idempotent', (c) => c.kv.range({ key: Buffer.from(key) }));
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
        const req = { key, range_end: end, limit: RANGE_PAGE, ...(atRev ? { revision: atRev } : {}) };
        const res = await this.members.call('idempotent', (c) => c.kv.range(req));
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
