// Follows a ConfigStore and publishes data-plane runtimes. Store events are coalesced (one rebuild per burst),
// a snapshot is validated off the request path, runtimes are built from it and swapped atomically.
// A rebuild failure keeps the last good runtime.
import { EventEmitter } from 'node:events';
import type { ConfigStore } from '../config/store.ts';
import { buildSnapshot, type Snapshot } from '../config/snapshot.ts';
import type { Logger } from '../observability/logger.ts';
import type { PluginSchemaSource } from '../schema/validator.ts';
import { checkExpr } from '../router/expr.ts';

/** One consumer of snapshots (HTTP runtime, stream runtime): builds its view, reusing the previous one. */
export interface RuntimeBuilder<R> {
  readonly name: string;
  build(snapshot: Snapshot, previous: R | null): R;
  /** Called for runtimes that were replaced, after in-flight users had a chance to finish. */
  retire?(runtime: R): void;
}

interface Slot<R> {
  builder: RuntimeBuilder<R>;
  current: R | null;
}

/**
 * Events: 'swap' (revision: number, buildMs: number) after every published rebuild;
 * 'error' is never emitted (build failures are logged).
 */
export class RuntimeManager extends EventEmitter {
  private readonly store: ConfigStore;
  private readonly plugins: PluginSchemaSource;
  private readonly logger: Logger;
  private readonly slots: Slot<unknown>[] = [];
  private snapshot_: Snapshot | null = null;
  private scheduled = false;
  private building = false;
  private dirty = false;
  private readonly onChange = (): void => this.schedule();

  constructor(store: ConfigStore, plugins: PluginSchemaSource, logger: Logger) {
    super();
    this.store = store;
    this.plugins = plugins;
    this.logger = logger;
  }

  add<R>(builder: RuntimeBuilder<R>): () => R | null {
    const slot: Slot<R> = { builder, current: null };
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
    this.store.on('change', this.onChange);
    this.store.on('resync', this.onChange);
    this.rebuild();
  }

  stop(): void {
    this.store.off('change', this.onChange);
    this.store.off('resync', this.onChange);
  }

  /** Rebuild now (plugin reload, health changes that need new balancers). */
  refresh(): void {
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

  private rebuild(): void {
    this.building = true;
    const started = performance.now();
    try {
      const snap = buildSnapshot(this.store.all(), this.store.revision, {
        plugins: this.plugins,
        compileVars: checkExpr,
        previous: this.snapshot_ ?? undefined,
      });
      for (const e of snap.errors) this.logger.warn({ key: e.key, error: e.message }, 'invalid config object skipped');
      const built: unknown[] = [];
      for (const slot of this.slots) built.push(slot.builder.build(snap, slot.current));
      this.snapshot_ = snap;
      for (let i = 0; i < this.slots.length; i++) {
        const slot = this.slots[i]!;
        const old = slot.current;
        slot.current = built[i];
        if (old !== null && old !== slot.current && slot.builder.retire) {
          const retire = slot.builder.retire.bind(slot.builder);
          // Requests pinned to the old runtime keep running; retire it once they are likely done.
          setTimeout(() => retire(old), 60_000).unref();
        }
      }
      this.emit('swap', snap.revision, performance.now() - started);
    } catch (err) {
      this.logger.error({ err }, 'config rebuild failed; keeping the last good runtime');
    } finally {
      this.building = false;
      if (this.dirty) {
        this.dirty = false;
        this.schedule();
      }
    }
  }
}
