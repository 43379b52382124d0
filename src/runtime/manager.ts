// Follows a ConfigStore and publishes data-plane runtimes. Store events are coalesced (one rebuild per burst),
// a snapshot is validated off the request path, runtimes are built from it and swapped atomically.
// A builder whose kinds did not change keeps its runtime (no build, no swap of that slot).
// A rebuild failure keeps the last good runtime. Values of secret managers (Vault) the confs reference are
// fetched between the snapshot and the build, so a swap never publishes a conf whose secret is not fetched.
import { EventEmitter } from 'node:events';
import type { Kind } from '../config/resources.ts';
import type { ConfigStore } from '../config/store.ts';
import { buildSnapshot, type Snapshot } from '../config/snapshot.ts';
import type { Logger } from '../observability/logger.ts';
import type { PluginSchemaSource } from '../schema/validator.ts';
import { checkExpr } from '../router/expr.ts';
import { prefetchVaultSecrets } from '../plugin/secret-vault.ts';

/** One consumer of snapshots (HTTP runtime, stream runtime): builds its view, reusing the previous one. */
export interface RuntimeBuilder<R> {
  readonly name: string;
  /**
   * The resource kinds the runtime is built from. When none of them changed since the snapshot the current
   * runtime was built from, the manager keeps that runtime. Absent: every kind.
   */
  readonly kinds?: readonly Kind[];
  /** `previous` is null for the first build and for full rebuilds (refresh()). */
  build(snapshot: Snapshot, previous: R | null): R;
  /** Called once `runtime` was replaced by `next`, after in-flight users had a chance to finish. */
  retire?(runtime: R, next: R): void;
  /**
   * Preferred over retire: called when `runtime` is replaced by `next`; returns the retirement to run after
   * the grace period. The returned function must hold only what retirement needs (never the runtimes nor
   * their snapshots), so a replaced runtime is freed as soon as the requests pinned to it are done, however
   * many swaps happen within one grace period.
   */
  detach?(runtime: R, next: R): () => void;
  /** A runtime that was built but never published (a later builder failed); `current` stays published. */
  discard?(runtime: R, current: R | null): void;
}

export interface RuntimeManagerOptions {
  /** How long a replaced runtime stays usable by requests pinned to it before it is retired (ms). */
  retireAfterMs?: number;
  /**
   * etcd provider: objects naming a plugin that is not enabled keep serving without it, with one warning per
   * object and plugin each time the object is validated (APISIX's data plane skips disabled plugins; its
   * yaml/json providers reject the object, which is what happens when this is false).
   */
  skipUnknownPlugins?: boolean;
}

interface Slot<R> {
  builder: RuntimeBuilder<R>;
  current: R | null;
  /** The snapshot `current` was built from. */
  builtFrom: Snapshot | null;
}

const DEFAULT_RETIRE_AFTER_MS = 60_000;

/**
 * Events: 'swap' (revision: number, buildMs: number) after every published rebuild;
 * 'error' is never emitted (build failures are logged).
 */
export class RuntimeManager extends EventEmitter {
  private readonly store: ConfigStore;
  private readonly plugins: PluginSchemaSource;
  private readonly logger: Logger;
  private readonly retireAfterMs: number;
  private readonly onUnknownPlugin: ((key: string, plugin: string) => void) | undefined;
  private readonly slots: Slot<unknown>[] = [];
  private snapshot_: Snapshot | null = null;
  private scheduled = false;
  private building = false;
  private dirty = false;
  private fullPending = false;
  /** Set by stop(): a build waiting on secret fetches is dropped instead of published. */
  private stopped = false;
  private readonly onChange = (): void => this.schedule();

  constructor(store: ConfigStore, plugins: PluginSchemaSource, logger: Logger, opts: RuntimeManagerOptions = {}) {
    super();
    this.store = store;
    this.plugins = plugins;
    this.logger = logger;
    this.retireAfterMs = opts.retireAfterMs ?? DEFAULT_RETIRE_AFTER_MS;
    this.onUnknownPlugin = opts.skipUnknownPlugins
      ? (key, plugin) =>
          this.logger.warn(
            { key, plugin },
            `skipping disabled or unknown plugin [${plugin}] of ${key}; enable the plugin in config.yaml or change the object`,
          )
      : undefined;
  }

  add<R>(builder: RuntimeBuilder<R>): () => R | null {
    const slot: Slot<R> = { builder, current: null, builtFrom: null };
    this.slots.push(slot as Slot<unknown>);
    return () => slot.current;
  }

  get snapshot(): Snapshot | null {
    return this.snapshot_;
  }

  get ready(): boolean {
    return this.snapshot_ !== null;
  }

  /** Builds from the store's current view and follows it. The store must be started. */
  start(): void {
    this.stopped = false;
    this.store.on('change', this.onChange);
    this.store.on('resync', this.onChange);
    this.rebuild();
  }

  stop(): void {
    this.store.off('change', this.onChange);
    this.store.off('resync', this.onChange);
    this.stopped = true;
  }

  /**
   * Full rebuild soon: every item revalidated and every runtime built without reuse (plugin reload, health
   * changes that need new balancers).
   */
  refresh(): void {
    this.fullPending = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.building) {
      this.dirty = true;
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate coalesces the events of one watch response / one burst of writes.
    setImmediate(() => {
      this.scheduled = false;
      this.rebuild();
    });
  }

  private unchangedFor(slot: Slot<unknown>, snap: Snapshot): boolean {
    const kinds = slot.builder.kinds;
    const from = slot.builtFrom;
    if (kinds === undefined || from === null || slot.current === null) return false;
    for (const kind of kinds) if (!snap.sameKind(kind, from)) return false;
    return true;
  }

  private rebuild(): void {
    this.building = true;
    const full = this.fullPending;
    this.fullPending = false;
    const started = performance.now();
    let snap: Snapshot;
    try {
      snap = buildSnapshot(this.store.all(), this.store.revision, {
        plugins: this.plugins,
        compileVars: checkExpr,
        previous: full ? undefined : (this.snapshot_ ?? undefined),
        onUnknownPlugin: this.onUnknownPlugin,
      });
      for (const e of snap.errors) this.logger.warn({ key: e.key, error: e.message }, 'invalid config object skipped');
    } catch (err) {
      this.logger.error({ err }, 'config rebuild failed; keeping the last good runtime');
      if (full) this.fullPending = true;
      this.settle();
      return;
    }
    // Secret manager values the plugin confs reference are fetched before a runtime is built from the
    // snapshot (plugin instances resolve references synchronously); events meanwhile mark the build dirty.
    const fetching = prefetchVaultSecrets(snap);
    if (fetching === null) this.publish(snap, full, started);
    else void fetching.then(() => this.publish(snap, full, started));
  }

  private publish(snap: Snapshot, full: boolean, started: number): void {
    if (this.stopped) {
      this.building = false;
      return;
    }
    const built: unknown[] = [];
    try {
      for (const slot of this.slots) {
        if (!full && this.unchangedFor(slot, snap)) built.push(slot.current);
        else built.push(slot.builder.build(snap, full ? null : slot.current));
      }
      this.snapshot_ = snap;
      for (let i = 0; i < this.slots.length; i++) {
        const slot = this.slots[i]!;
        const old = slot.current;
        const next = built[i];
        if (next === old) continue;
        slot.current = next;
        slot.builtFrom = snap;
        if (old === null) continue;
        // Requests pinned to the old runtime keep running; retire it once they are likely done.
        const builder = slot.builder;
        if (builder.detach) setTimeout(builder.detach(old, next), this.retireAfterMs).unref();
        else if (builder.retire) setTimeout(() => builder.retire!(old, next), this.retireAfterMs).unref();
      }
      built.length = 0;
      this.emit('swap', snap.revision, performance.now() - started);
    } catch (err) {
      this.logger.error({ err }, 'config rebuild failed; keeping the last good runtime');
      for (let i = 0; i < built.length; i++) {
        const slot = this.slots[i]!;
        if (built[i] !== slot.current) slot.builder.discard?.(built[i], slot.current);
      }
      if (full) this.fullPending = true;
    } finally {
      this.settle();
    }
  }

  private settle(): void {
    this.building = false;
    if (this.dirty) {
      this.dirty = false;
      this.schedule();
    }
  }
}
