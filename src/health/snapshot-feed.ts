// Snapshots for a process that runs no data plane (the cluster primary): follows the ConfigStore, coalesces
// a burst of events into one build, and hands each validated snapshot to `onSnapshot`. The data-plane
// processes build their own snapshots (RuntimeManager); this one only drives the health checkers.
import type { ConfigStore } from '../config/store.ts';
import { buildSnapshot, type Snapshot } from '../config/snapshot.ts';
import type { Logger } from '../observability/logger.ts';
import { checkExpr } from '../router/expr.ts';
import type { PluginSchemaSource } from '../schema/validator.ts';

function ignoreUnknownPlugin(): void {}

export class SnapshotFeed {
  private readonly store: ConfigStore;
  private readonly plugins: PluginSchemaSource;
  private readonly onSnapshot: (s: Snapshot) => void;
  private readonly logger: Logger;
  /** etcd provider: objects naming a disabled plugin stay valid, as in the workers (which log the warning). */
  private readonly skipUnknownPlugins: boolean;
  private previous: Snapshot | null = null;
  private scheduled = false;
  /** The plugin set changed: the next build revalidates every item instead of reusing `previous`. */
  private full = false;
  private readonly onChange = (): void => this.schedule();

  constructor(store: ConfigStore, plugins: PluginSchemaSource, onSnapshot: (s: Snapshot) => void, logger: Logger, skipUnknownPlugins = false) {
    this.store = store;
    this.plugins = plugins;
    this.onSnapshot = onSnapshot;
    this.logger = logger;
    this.skipUnknownPlugins = skipUnknownPlugins;
  }

  get snapshot(): Snapshot | null {
    return this.previous;
  }

  start(): void {
    this.store.on('change', this.onChange);
    this.store.on('resync', this.onChange);
    this.build();
  }

  stop(): void {
    this.store.off('change', this.onChange);
    this.store.off('resync', this.onChange);
  }

  /** Full rebuild soon (plugin reload), as RuntimeManager.refresh() does for the data plane. */
  refresh(): void {
    this.full = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.build();
    });
  }

  private build(): void {
    try {
      const snap = buildSnapshot(this.store.all(), this.store.revision, {
        plugins: this.plugins,
        compileVars: checkExpr,
        previous: this.full ? undefined : (this.previous ?? undefined),
        onUnknownPlugin: this.skipUnknownPlugins ? ignoreUnknownPlugin : undefined,
      });
      this.previous = snap;
      this.full = false;
      this.onSnapshot(snap);
    } catch (err) {
      this.logger.error({ err }, 'health snapshot build failed; keeping the current checkers');
    }
  }
}
