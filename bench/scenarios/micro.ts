// Micro benchmarks of the hot functions (bench/micro/): router lookup over 10,000 routes, balancer pick per
// type, vars expression evaluation, and the snapshot rebuild after one change. Each reports CPU ns per
// operation (median of batches), so CPU steal affects them far less than wall time.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run as balancerBench } from '../micro/balancer.ts';
import { run as exprBench } from '../micro/expr.ts';
import { run as routerBench } from '../micro/router.ts';
import type { Scenario, Table } from '../lib/types.ts';

const SNAPSHOT_SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../micro/snapshot.ts');

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

export const micro: Scenario = {
  name: 'micro',
  title: 'Micro benchmarks of the hot functions (CPU ns per operation)',
  budgetSec: 120,
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
    return {
      summary: { router, balancer, expr, snapshot },
      tables: [
        table(`Router (${router.routes} routes): build ms, lookup ns`, router),
        table('Balancer pick, 10 endpoints (ns)', balancer),
        table('Vars expression evaluation (ns)', expr),
        table('Snapshot build, 10,000 routes (ms)', snapshot),
      ],
      notes: ['Router, balancer and expression figures are the median over batches of CPU (or monotonic) time divided by operations.'],
    };
  },
};
