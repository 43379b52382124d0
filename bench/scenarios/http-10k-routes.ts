// 10,000 routes (exact URIs /r/0 .. /r/9999), requests spread over all of them by a wrk Lua script; the
// gateway with 10,000 routes next to the same gateway with one catch-all route, and nginx with 10,000
// `location =` blocks.
import path from 'node:path';
import { compareTargets, statsSummary, statsTable, type Target } from '../lib/compare.ts';
import { startGateway } from '../lib/gateway.ts';
import { directTarget, startHttpPeers, startUpstream } from '../lib/http-setup.ts';
import { track } from '../lib/service.ts';
import type { Scenario } from '../lib/types.ts';
import { cyclePathsScript } from '../lib/wrk.ts';

const ROUTES = 10_000;
const SMOKE_ROUTES = 200;

export const http10kRoutes: Scenario = {
  name: 'http-10k-routes',
  title: 'HTTP, 10,000 routes, requests cycling over all of them (wrk -t1 -c50, Lua path script)',
  budgetSec: 150,
  skipReason: async () => null,
  run: async (ctx) => {
    const n = ctx.smoke ? SMOKE_ROUTES : ROUTES;
    const up = await startUpstream(ctx);
    const upstreams = [{ id: '1', type: 'roundrobin', nodes: { [`127.0.0.1:${up.port}`]: 1 } }];
    const routes = [];
    for (let i = 0; i < n; i++) routes.push({ id: String(i), uri: `/r/${i}`, upstream_id: '1' });
    const [many, one, peers] = await Promise.all([
      track(ctx.services, startGateway({ dir: path.join(ctx.tmp, 'gw-many'), standalone: { upstreams, routes } })),
      track(ctx.services, startGateway({ dir: path.join(ctx.tmp, 'gw-one'), standalone: { upstreams, routes: [{ id: '1', uri: '/*', upstream_id: '1' }] } })),
      startHttpPeers(ctx, up.port, ['nginx'], n),
    ]);
    const targets: Target[] = [
      directTarget(up.port),
      { name: 'gateway-1route', url: `http://127.0.0.1:${one.port}`, pid: one.pid },
      { name: 'gateway', url: `http://127.0.0.1:${many.port}`, pid: many.pid },
      ...peers,
    ];
    const script = await cyclePathsScript(ctx.tmp, '/r/', n);
    const stats = await compareTargets(ctx, targets, { path: '/', connections: 50, script }, { upstreamPid: up.svc.pid, label: `${n} routes` });
    const g = stats.find((s) => s.name === 'gateway')!;
    const g1 = stats.find((s) => s.name === 'gateway-1route')!;
    const perRound: number[] = [];
    for (let i = 0; i < g.runs.length; i++) perRound.push(g.runs[i]!.wrk.rps / g1.runs[i]!.wrk.rps);
    perRound.sort((a, b) => a - b);
    const vsOne = perRound[perRound.length >> 1]!;
    return {
      summary: { routes: n, targets: statsSummary(stats), gateway_10k_vs_1route: Math.round(vsOne * 1000) / 1000 },
      tables: [statsTable(`${n.toLocaleString('en-US')} routes, paths cycling over all of them`, stats)],
      notes: [
        `gateway with ${n.toLocaleString('en-US')} routes serves ${(vsOne * 100).toFixed(0)} % of the req/s of the same gateway with one catch-all route (median of per-round ratios).`,
        'Every route is an exact URI referring to one shared upstream object (upstream_id); nginx gets one `location =` per route.',
      ],
    };
  },
};
