// APISIX's batch processor (apisix/utils/batch-processor.lua) for log sinks: entries are buffered and handed
// to the sink in batches of at most batch_max_size; a partial batch goes out once no entry arrived for
// inactive_timeout seconds or the oldest entry waited buffer_duration seconds. A failed batch is retried
// max_retry_count times, retry_delay seconds apart, then dropped. Nothing here blocks a request: push() is
// synchronous and bounded (at most MAX_PENDING_BATCHES batches wait; beyond that entries are dropped and
// counted), so a slow or dead sink costs memory up to that bound, never latency.

export interface BatchConf {
  readonly name: string;
  /** Labels of APISIX's batch_process_entries gauge, when the owner knows them. */
  readonly route_id?: string;
  readonly server_addr?: string;
  readonly batch_max_size: number;
  readonly inactive_timeout: number;
  readonly buffer_duration: number;
  readonly max_retry_count: number;
  readonly retry_delay: number;
}

/** The batch processor properties every batching logger schema gets (defaults as APISIX). */
export function batchSchemaProps(name: string): Record<string, Record<string, unknown>> {
  return {
    name: { type: 'string', default: name },
    max_retry_count: { type: 'integer', minimum: 0, default: 0 },
    retry_delay: { type: 'integer', minimum: 0, default: 1 },
    buffer_duration: { type: 'integer', minimum: 1, default: 60 },
    inactive_timeout: { type: 'integer', minimum: 1, default: 5 },
    batch_max_size: { type: 'integer', minimum: 1, default: 1000 },
  };
}

export function batchConfOf(conf: Record<string, unknown>, name: string): BatchConf {
  const n = (k: string, d: number) => (typeof conf[k] === 'number' ? (conf[k] as number) : d);
  return {
    name: typeof conf.name === 'string' ? conf.name : name,
    batch_max_size: n('batch_max_size', 1000),
    inactive_timeout: n('inactive_timeout', 5),
    buffer_duration: n('buffer_duration', 60),
    max_retry_count: n('max_retry_count', 0),
    retry_delay: n('retry_delay', 1),
    ...(typeof conf.route_id === 'string' ? { route_id: conf.route_id } : {}),
    ...(typeof conf.server_addr === 'string' ? { server_addr: conf.server_addr } : {}),
  };
}

/** Sends one batch; rejects (or throws) when the sink failed, which triggers the retries. */
export type BatchSink<T> = (entries: T[]) => Promise<void>;

export const MAX_PENDING_BATCHES = 10;

/**
 * What the metrics read at scrape time (src/observability/metrics.ts): entries waiting in every live batch
 * queue (APISIX's batch_process_entries{name,route_id,server_addr}) and entries dropped per processor name
 * since start (a monotonic counter kept here, so it survives the processors themselves). Queues are held
 * weakly: a released processor disappears from the gauge once collected, without an explicit close.
 */
export interface BatchSource {
  readonly name: string;
  readonly routeId: string;
  readonly serverAddr: string;
  buffered(): number;
}

const liveSources = new Set<WeakRef<BatchSource>>();
const droppedTotals = new Map<string, number>();

/** Adds a queue to the batch_process_entries gauge; returns its undo. */
export function registerBatchSource(s: BatchSource): () => void {
  const ref = new WeakRef(s);
  liveSources.add(ref);
  return () => liveSources.delete(ref);
}

export function countDropped(name: string, n: number): void {
  droppedTotals.set(name, (droppedTotals.get(name) ?? 0) + n);
}

export function batchSources(): BatchSource[] {
  const out: BatchSource[] = [];
  for (const ref of liveSources) {
    const s = ref.deref();
    if (s === undefined) liveSources.delete(ref);
    else out.push(s);
  }
  return out;
}

export function droppedEntries(): ReadonlyMap<string, number> {
  return droppedTotals;
}

export interface BatchStats {
  /** Entries handed to the sink successfully. */
  sent: number;
  /** Entries dropped: retries exhausted, or the pending bound reached. */
  dropped: number;
  /** Batches that failed at least once. */
  failures: number;
}

export class BatchProcessor<T> implements BatchSource {
  readonly conf: BatchConf;
  readonly name: string;
  readonly routeId: string;
  readonly serverAddr: string;
  readonly stats: BatchStats = { sent: 0, dropped: 0, failures: 0 };
  private readonly sink: BatchSink<T>;
  private readonly onError: (err: unknown, batch: number, willRetry: boolean) => void;
  private buffer: T[] = [];
  private firstAt = 0;
  private lastAt = 0;
  private timer: NodeJS.Timeout | null = null;
  /** Batches handed to the sink or waiting for a retry. */
  private inFlight = 0;
  private readonly idle = new Set<() => void>();

  constructor(conf: BatchConf, sink: BatchSink<T>, onError: (err: unknown, batch: number, willRetry: boolean) => void = () => undefined) {
    this.conf = conf;
    this.name = conf.name;
    this.routeId = conf.route_id ?? '';
    this.serverAddr = conf.server_addr ?? '';
    this.sink = sink;
    this.onError = onError;
    registerBatchSource(this);
  }

  buffered(): number {
    return this.buffer.length;
  }

  private drop(n: number): void {
    this.stats.dropped += n;
    countDropped(this.name, n);
  }

  push(entry: T): void {
    // hot path (log phase)
    if (this.inFlight >= MAX_PENDING_BATCHES && this.buffer.length >= this.conf.batch_max_size) {
      this.drop(1);
      return;
    }
    const now = Date.now();
    if (this.buffer.length === 0) this.firstAt = now;
    this.lastAt = now;
    this.buffer.push(entry);
    if (this.buffer.length >= this.conf.batch_max_size) {
      this.process();
      return;
    }
    if (this.timer === null) this.arm();
  }

  private arm(): void {
    this.timer = setTimeout(this.tick, this.conf.inactive_timeout * 1000);
    this.timer.unref();
  }

  private readonly tick = (): void => {
    this.timer = null;
    if (this.buffer.length === 0) return;
    const now = Date.now();
    if (now - this.lastAt >= this.conf.inactive_timeout * 1000 || now - this.firstAt >= this.conf.buffer_duration * 1000) this.process();
    else this.arm();
  };

  /** Hands the buffered entries to the sink now. */
  process(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.buffer.length === 0) return;
    const batch = this.buffer;
    this.buffer = [];
    if (this.inFlight >= MAX_PENDING_BATCHES) {
      this.drop(batch.length);
      return;
    }
    this.inFlight++;
    void this.send(batch, 0);
  }

  private async send(batch: T[], retry: number): Promise<void> {
    try {
      await this.sink(batch);
      this.stats.sent += batch.length;
    } catch (err) {
      if (retry === 0) this.stats.failures++;
      const again = retry < this.conf.max_retry_count;
      this.onError(err, batch.length, again);
      if (again) {
        const t = setTimeout(() => void this.send(batch, retry + 1), this.conf.retry_delay * 1000);
        t.unref();
        return;
      }
      this.drop(batch.length);
    }
    this.inFlight--;
    if (this.inFlight === 0) for (const f of this.idle) f();
  }

  /** Sends what is buffered and resolves when nothing is in flight (shutdown, config change). */
  async flush(): Promise<void> {
    this.process();
    if (this.inFlight === 0) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.idle.delete(done);
        resolve();
      };
      this.idle.add(done);
    });
  }
}
