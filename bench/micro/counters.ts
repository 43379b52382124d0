// Micro benchmark of one rate-limit count (limit-count's local policy) as a request pays for it:
// - `local_ns`: the in-memory store of a single process (worker_processes 1), synchronous;
// - `ipc_sequential_*`: a cluster worker asking the primary (counters/cluster.ts), one count at a time, so each
//   pays a full round trip: wall time per count, and CPU per count of worker + primary together;
// - `ipc_concurrent64_*`: 64 counts in flight, as under load: the worker's counts of one event-loop turn share
//   one IPC message, so the cost per count falls.
// Runs a real cluster primary and one forked worker. `npx node bench/micro/counters.ts [--smoke]`.
import cluster from 'node:cluster';
import { fileURLToPath } from 'node:url';
import { attachCounterPrimary, nodeCounters } from '../../src/plugin/counters/cluster.ts';

const SELF = fileURLToPath(import.meta.url);
const WINDOW_MS = 60_000;
const LIMIT = 1_000_000_000;

interface WorkerReport {
  type: 'bench-report';
  phase: string;
  count: number;
  wallNs: number;
  workerCpuUs: number;
}

function cpuUs(): number {
  const c = process.cpuUsage();
  return c.user + c.system;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

function localNs(batches: number, perBatch: number): number {
  const samples: number[] = [];
  let sink = 0;
  for (let b = 0; b < batches; b++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < perBatch; i++) {
      const r = nodeCounters.incr(`route:1:abc:10.0.${(i >> 8) & 255}.${i & 255}`, WINDOW_MS, LIMIT, 'fixed');
      sink += (r as { count: number }).count;
    }
    samples.push(Number(process.hrtime.bigint() - start) / perBatch);
  }
  if (sink === -1) console.log(sink);
  return median(samples);
}

/** Worker side: runs the phases and reports each to the primary. */
async function workerMain(smoke: boolean): Promise<void> {
  const n = smoke ? 500 : 20_000;
  const report = (phase: string, count: number, wallNs: number, workerCpuUs: number) =>
    process.send!({ type: 'bench-report', phase, count, wallNs, workerCpuUs } satisfies WorkerReport);
  // Warm-up (JIT, IPC channel).
  for (let i = 0; i < 200; i++) await nodeCounters.incr(`w${i & 15}`, WINDOW_MS, LIMIT, 'fixed');
  await new Promise((r) => setTimeout(r, 50));

  process.send!({ type: 'bench-phase', phase: 'sequential' });
  await new Promise((r) => setTimeout(r, 20));
  let cpu = cpuUs();
  let t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await nodeCounters.incr(`k${i & 1023}`, WINDOW_MS, LIMIT, 'fixed');
  report('sequential', n, Number(process.hrtime.bigint() - t), cpuUs() - cpu);

  await new Promise((r) => setTimeout(r, 20));
  process.send!({ type: 'bench-phase', phase: 'concurrent64' });
  await new Promise((r) => setTimeout(r, 20));
  cpu = cpuUs();
  t = process.hrtime.bigint();
  const inFlight = 64;
  let next = 0;
  const lane = async () => {
    while (next < n) {
      const i = next++;
      await nodeCounters.incr(`k${i & 1023}`, WINDOW_MS, LIMIT, 'fixed');
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  report('concurrent64', n, Number(process.hrtime.bigint() - t), cpuUs() - cpu);
  process.disconnect();
}

export async function run(opts: { smoke: boolean }): Promise<Record<string, number>> {
  const result: Record<string, number> = {};
  result.local_ns = Math.round(localNs(opts.smoke ? 3 : 9, opts.smoke ? 2_000 : 200_000));
  const detach = attachCounterPrimary();
  cluster.setupPrimary({ exec: SELF, args: opts.smoke ? ['--worker', '--smoke'] : ['--worker'] });
  const w = cluster.fork();
  let phaseCpu = 0;
  await new Promise<void>((resolve, reject) => {
    w.on('message', (m: Partial<Omit<WorkerReport, 'type'>> & { type?: string }) => {
      if (m.type === 'bench-phase') phaseCpu = cpuUs();
      else if (m.type === 'bench-report') {
        const primaryCpuUs = cpuUs() - phaseCpu;
        const per = m.count!;
        result[`ipc_${m.phase}_wall_ns`] = Math.round(m.wallNs! / per);
        result[`ipc_${m.phase}_cpu_ns`] = Math.round(((m.workerCpuUs! + primaryCpuUs) * 1000) / per);
      }
    });
    w.once('exit', (code) => (code === 0 || code === null ? resolve() : reject(new Error(`bench worker exited ${code}`))));
  });
  detach();
  return result;
}

if (cluster.isWorker) {
  await workerMain(process.argv.includes('--smoke'));
} else if (process.argv[1] === SELF) {
  console.log(JSON.stringify(await run({ smoke: process.argv.includes('--smoke') }), null, 2));
}
