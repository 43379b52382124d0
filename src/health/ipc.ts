// Cluster wiring of health: the primary runs the HealthManager and broadcasts every state change to the
// workers, answers a worker's hello with the full state, and applies the passive reports workers forward.
// Workers attach a HealthReplica to their IPC channel.
import cluster from 'node:cluster';
import type { HealthManager } from './manager.ts';
import type { HealthMessage, HealthReplica, WorkerHealthMessage } from './replica.ts';

function broadcast(msg: HealthMessage): void {
  for (const w of Object.values(cluster.workers ?? {})) {
    if (w && w.isConnected()) w.send(msg);
  }
}

/** Primary side. Returns a detach function. */
export function attachPrimary(manager: HealthManager): () => void {
  const onChange = (key: string, endpoint: string, healthy: boolean): void => broadcast({ type: 'health', key, endpoint, healthy });
  const onDrop = (key: string): void => broadcast({ type: 'health-drop', key });
  const onMessage = (worker: { send(m: unknown): boolean; isConnected(): boolean }, raw: unknown): void => {
    const m = raw as WorkerHealthMessage | null;
    if (m === null || typeof m !== 'object') return;
    if (m.type === 'health-hello') {
      if (worker.isConnected()) worker.send({ type: 'health-state', state: manager.state() } satisfies HealthMessage);
    } else if (m.type === 'health-report' && typeof m.key === 'string' && typeof m.endpoint === 'string') {
      if (typeof m.status === 'number') manager.reportStatus(m.key, m.endpoint, m.status);
      else if (typeof m.kind === 'string') manager.reportFailure(m.key, m.endpoint, m.kind);
    }
  };
  manager.on('change', onChange);
  manager.on('drop', onDrop);
  cluster.on('message', onMessage);
  return () => {
    manager.off('change', onChange);
    manager.off('drop', onDrop);
    cluster.off('message', onMessage);
  };
}

/** Worker side: feeds `replica` from the primary and asks for the full state. Returns a detach function. */
export function attachWorker(replica: HealthReplica): () => void {
  const onMessage = (m: unknown): void => void replica.handle(m);
  process.on('message', onMessage);
  replica.hello();
  return () => process.off('message', onMessage);
}

/** The send function a worker's HealthReplica uses (a no-op outside a cluster worker). */
export function sendToPrimary(msg: WorkerHealthMessage): void {
  if (process.send && process.connected) process.send(msg);
}
