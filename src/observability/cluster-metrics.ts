// Metrics across cluster workers. Workers answer the primary's `swy:metrics:collect` with a snapshot of their
// registry; the primary merges them with its own (health checkers and the etcd store live there) into what
// the exporter serves. A worker that needs the cluster-wide text (public-api on the data plane) asks the
// primary with `swy:metrics:text`. Workers that do not answer within the timeout are left out of that scrape.
import cluster, { type Worker } from 'node:cluster';
import { gatewayMetrics } from './metrics.ts';
import { mergeSnapshots, renderText, type FamilySnapshot } from './registry.ts';

const COLLECT = 'swy:metrics:collect';
const SNAPSHOT = 'swy:metrics:snapshot';
const TEXT_REQ = 'swy:metrics:text';
const TEXT_RES = 'swy:metrics:text-result';
const TIMEOUT_MS = 5000;

interface Msg {
  type?: string;
  id?: number;
  families?: FamilySnapshot[];
  text?: string;
}

let seq = 0;
let workerInstalled = false;
let primaryInstalled = false;
const pending = new Map<number, (m: Msg) => void>();

function onReply(m: Msg): void {
  if ((m?.type === SNAPSHOT || m?.type === TEXT_RES) && typeof m.id === 'number') {
    const done = pending.get(m.id);
    if (done !== undefined) {
      pending.delete(m.id);
      done(m);
    }
  }
}

/** Worker side: answer the primary's collection requests. Idempotent. */
export function enableClusterMetrics(): void {
  if (workerInstalled || !cluster.isWorker) return;
  workerInstalled = true;
  process.on('message', (m: Msg) => {
    onReply(m);
    if (m?.type !== COLLECT || typeof m.id !== 'number') return;
    const id = m.id;
    void gatewayMetrics().registry.snapshot().then((families) => process.send?.({ type: SNAPSHOT, id, families }));
  });
}

function ask(w: Worker): Promise<FamilySnapshot[] | null> {
  return new Promise((resolve) => {
    const id = ++seq;
    const timer = setTimeout(() => {
      pending.delete(id);
      resolve(null);
    }, TIMEOUT_MS);
    pending.set(id, (m) => {
      clearTimeout(timer);
      resolve(m.families ?? null);
    });
    try {
      w.send({ type: COLLECT, id });
    } catch {
      clearTimeout(timer);
      pending.delete(id);
      resolve(null);
    }
  });
}

/** Primary side: route workers' replies and text requests. Idempotent. */
export function installClusterMetricsPrimary(): void {
  if (primaryInstalled || !cluster.isPrimary) return;
  primaryInstalled = true;
  cluster.on('message', (w: Worker, m: Msg) => {
    onReply(m);
    if (m?.type !== TEXT_REQ || typeof m.id !== 'number') return;
    const id = m.id;
    void clusterMetricsText().then(
      (text) => w.send({ type: TEXT_RES, id, text }),
      () => w.send({ type: TEXT_RES, id, text: '' }),
    );
  });
}

/** This process's metrics plus, on a cluster primary, every live worker's. */
export async function clusterMetricsText(): Promise<string> {
  const own = await gatewayMetrics().registry.snapshot();
  const workers = cluster.isPrimary ? Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected()) : [];
  if (workers.length === 0) return renderText(own);
  installClusterMetricsPrimary();
  const parts = await Promise.all(workers.map(ask));
  return renderText(mergeSnapshots([own, ...parts.filter((p): p is FamilySnapshot[] => p !== null)]));
}

/** The text a scrape should see from this process: a worker asks its primary, others collect themselves. */
export function metricsTextFromHere(): Promise<string> {
  if (!cluster.isWorker || process.send === undefined) return clusterMetricsText();
  enableClusterMetrics();
  return new Promise((resolve) => {
    const id = ++seq;
    const timer = setTimeout(() => {
      pending.delete(id);
      // No primary answer: this worker's own view is better than nothing.
      void gatewayMetrics().registry.snapshot().then((f) => resolve(renderText(f)));
    }, TIMEOUT_MS);
    pending.set(id, (m) => {
      clearTimeout(timer);
      resolve(m.text ?? '');
    });
    process.send!({ type: TEXT_REQ, id });
  });
}
