// Fixture for ipc.test.ts: a real cluster primary (argv[2] 'attach' runs attachCounterPrimary, 'none' does not)
// with two forked workers. Each worker counts against one shared key and reports; the primary prints every
// report as one JSON line and exits when both workers are done.
import cluster from 'node:cluster';
import { attachCounterPrimary, nodeCounters } from '../../../src/plugin/counters/cluster.ts';

if (cluster.isPrimary) {
  if (process.argv[2] === 'attach') attachCounterPrimary();
  let done = 0;
  for (let i = 0; i < 2; i++) {
    const w = cluster.fork();
    w.on('message', (m: { type?: string }) => {
      if (m.type !== 'report') return;
      console.log(JSON.stringify(m));
      if (++done === 2) process.exit(0);
    });
  }
} else {
  const t = Date.now();
  // 30 counts issued in one event-loop turn (one IPC message), limit 40 for the node.
  const all = await Promise.all(Array.from({ length: 30 }, () => nodeCounters.incr('shared', 60_000, 40, 'fixed')));
  const leaks = await Promise.all([nodeCounters.leak('bucket', 0.001, 0), nodeCounters.leak('bucket', 0.001, 0)]);
  process.send!({ type: 'report', allowed: all.filter((r) => r.allowed).length, maxCount: Math.max(...all.map((r) => r.count)), leaks, ms: Date.now() - t });
}
