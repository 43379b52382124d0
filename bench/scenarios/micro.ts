// Micro benchmarks of the hot functions (bench/micro/): router lookup over 10,000 routes, balancer pick per
// type, vars expression evaluation, the snapshot rebuild after one change, and the node-wide rate-limit count
// (limit-count local policy: in-process, and through the cluster primary by IPC one at a time and 64 in
// flight). Each reports CPU ns per operation (median of batches), so CPU steal affects them far less than wall
// time; the IPC rows also give wall ns per count.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run as balancerBench } from '../micro/balancer.ts';
import { run as exprBench } from '../micro/expr.ts';
import { run as routerBench } from '../micro/router.ts';
import type { Scenario, Table } from '../lib/types.ts';

const MICRO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../micro');
const SNAPSHOT_SCRIPT = path.join(MICRO_DIR, 'snapshot.ts');
const COUNTERS_SCRIPT = path.join(MICRO_DIR, 'counters.ts');

function table(title: string, figures: Record<string, number>): Table {
  return { title, columns: ['case', 'value'], rows: Object.entries(figures).map(([k, v]) => [k, String(v)]) };
}

/** bench/micro/snapshot.ts runs at import (no run() export), so it runs in a child process and its lines are parsed. */
function snapshotBench(): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [SNAPSHOT_SCRIPT], { timeout: 60_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`snapshot micro benchmark: ${stderr || err.message}`));
      const full = /full build: ([\d.]+) ms/.exec(stdout);
      const rebuild = /median ([\d.]+) ms/.exec(stdout);
      if (!full || !rebuild) return reject(new Error(`unexpected snapshot benchmark output: ${stdout.slice(0, 500)}`));
      resolve({ full_build_10k_routes_ms: Number(full[1]), rebuild_after_one_change_ms: Number(rebuild[1]) });
    });
  });
}

/**
 * bench/micro/counters.ts forks a cluster worker and attaches the counter primary: it runs in its own process
 * so the cluster settings and the primary's IPC listeners stay out of the bench process. It prints its figures
 * as JSON.
 */
function countersBench(smoke: boolean): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    const args = smoke ? [COUNTERS_SCRIPT, '--smoke'] : [COUNTERS_SCRIPT];
    execFile(process.execPath, args, { timeout: 120_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`counters micro benchmark: ${stderr || err.message}`));
      try {
        resolve(JSON.parse(stdout) as Record<string, number>);
      } catch {
        reject(new Error(`unexpected counters benchmark output: ${stdout.slice(0, 500)}`));
      }
    });
  });
}

export const micro: Scenario = {
  name: 'micro',
  title: 'Micro benchmarks of the hot functions (CPU ns per operation)',
  budgetSec: 300,
  skipReason: async () => null,
  run: async (ctx) => {
    const smoke = ctx.smoke;
    const router = await routerBench({ smoke });
    ctx.log(`  router: ${JSON.stringify(router)}`);
    const balancer = await balancerBench({ smoke });
    ctx.log(`  balancer: ${JSON.stringify(balancer)}`);
    const expr = await exprBench({ smoke });
    ctx.log(`  expr: ${JSON.stringify(expr)}`);
    const snapshot = await snapshotBench();
    ctx.log(`  snapshot: ${JSON.stringify(snapshot)}`);
    const counters = await countersBench(smoke);
    ctx.log(`  counters: ${JSON.stringify(counters)}`);
    return {
      summary: { router, balancer, expr, snapshot, counters },
      tables: [
        table(`Router (${router.routes} routes): build ms, lookup ns`, router),
        table('Balancer pick, 10 endpoints (ns)', balancer),
        table('Vars expression evaluation (ns)', expr),
        table('Snapshot build, 10,000 routes (ms)', snapshot),
        table('Node-wide rate-limit count (limit-count local policy), ns per count', counters),
      ],
      notes: [
        'Router, balancer and expression figures are the median over batches of CPU (or monotonic) time divided by operations.',
        'Counters: local_ns is one in-process count (worker_processes 1); ipc_* is a cluster worker counting through the primary, one count at a time (sequential: a full round trip each) or 64 in flight (counts of one event-loop turn share an IPC message); cpu_ns sums worker and primary CPU.',
      ],
    };
  },
};
