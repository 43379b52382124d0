// Two builds of the gateway side by side on the http-1route load: this checkout and BENCH_BASE (another
// checkout with its node_modules, e.g. `git worktree add /tmp/base <rev>`), alternating within each round, with
// nginx as the reference. Answers "is this change a tax on the bare proxy path?" with CPU per request measured
// in one run, which a comparison against committed figures from another day cannot.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { compareTargets, statsSummary, statsTable, type Target } from '../lib/compare.ts';
import { route, startGateway } from '../lib/gateway.ts';
import { startHttpPeers, startUpstream } from '../lib/http-setup.ts';
import { track } from '../lib/service.ts';
import type { Scenario } from '../lib/types.ts';

const base = process.env.BENCH_BASE;

export const httpAb: Scenario = {
  name: 'http-ab',
  title: 'HTTP, one route: this build vs BENCH_BASE (1 KB responses, keep-alive, wrk -t1 -c50)',
  budgetSec: 240,
  skipReason: async () =>
    base === undefined ? 'set BENCH_BASE to another checkout (with node_modules) to compare against' : existsSync(path.join(base, 'bin/switchyard.mjs')) ? null : `BENCH_BASE=${base} has no bin/switchyard.mjs`,
  run: async (ctx) => {
    const up = await startUpstream(ctx);
    const routes = { routes: [route('1', '/*', up.port)] };
    // Both builds on the socket HTTP/1.1 engine and socket upstream client (the default engine is node:http), so
    // the ratio measures the socket path issue 19 tunes rather than node:http's request objects.
    const switchyard = { http1_engine: 'socket', upstream_http1_client: 'socket' };
    const [head, old, peers] = await Promise.all([
      track(ctx.services, startGateway({ dir: path.join(ctx.tmp, 'head'), standalone: routes, switchyard })),
      track(ctx.services, startGateway({ dir: path.join(ctx.tmp, 'base'), standalone: routes, root: base, switchyard })),
      startHttpPeers(ctx, up.port, ['nginx']),
    ]);
    const targets: Target[] = [
      { name: 'gateway (base)', url: `http://127.0.0.1:${old.port}`, pid: old.pid },
      { name: 'gateway (this build)', url: `http://127.0.0.1:${head.port}`, pid: head.pid },
      ...peers,
    ];
    const stats = await compareTargets(ctx, targets, { path: '/', connections: 50 }, { upstreamPid: up.svc.pid, label: 'saturation' });
    const b = stats.find((s) => s.name === 'gateway (base)')!;
    const h = stats.find((s) => s.name === 'gateway (this build)')!;
    return {
      summary: { base, saturation: statsSummary(stats), cpu_ratio_head_over_base: h.cpuUsPerReq / b.cpuUsPerReq },
      tables: [statsTable('Saturation (closed loop, 50 connections)', stats)],
      notes: [
        `Base checkout: ${base}. CPU µs/req of this build / base: ${(h.cpuUsPerReq / b.cpuUsPerReq).toFixed(2)}.`,
        'proxy CPU µs/req: user+system CPU of the proxy process tree (/proc/<pid>/stat) divided by the requests served.',
      ],
    };
  },
};
