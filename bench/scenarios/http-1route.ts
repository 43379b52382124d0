// One route, no plugins: the gateway's bare proxy cost next to nginx, haproxy, @fastify/http-proxy and a
// minimal undici proxy, all in front of the same static upstream; then latency at half the gateway's
// saturation (paced load).
import path from 'node:path';
import { compareTargets, statsSummary, statsTable, type Target } from '../lib/compare.ts';
import { route, startGateway } from '../lib/gateway.ts';
import { directTarget, startHttpPeers, startUpstream } from '../lib/http-setup.ts';
import { pacedLatency } from '../lib/paced.ts';
import { track } from '../lib/service.ts';
import type { Scenario } from '../lib/types.ts';

const CONNECTIONS = 50;

export const http1Route: Scenario = {
  name: 'http-1route',
  title: 'HTTP, one route, no plugins (1 KB responses, keep-alive, wrk -t1 -c50)',
  budgetSec: 240,
  skipReason: async () => null,
  run: async (ctx) => {
    const up = await startUpstream(ctx);
    const [gw, peers] = await Promise.all([
      track(ctx.services, startGateway({ dir: path.join(ctx.tmp, 'gateway'), standalone: { routes: [route('1', '/*', up.port)] } })),
      startHttpPeers(ctx, up.port, ['nginx', 'haproxy', 'fastify', 'undici']),
    ]);
    const targets: Target[] = [directTarget(up.port), { name: 'gateway', url: `http://127.0.0.1:${gw.port}`, pid: gw.pid }, ...peers];
    const stats = await compareTargets(ctx, targets, { path: '/', connections: CONNECTIONS }, { upstreamPid: up.svc.pid, label: 'saturation' });
    const gateway = stats.find((s) => s.name === 'gateway')!;
    // A smoke run only checks the paced pass works, on the two targets it compares first.
    const pacedTargets = ctx.smoke ? targets.slice(0, 2) : targets;
    const paced = await pacedLatency(ctx, pacedTargets, gateway.rps.median / 2, up.svc.pid);
    return {
      summary: { saturation: statsSummary(stats), half_saturation: paced.summary },
      tables: [statsTable('Saturation (closed loop, 50 connections)', stats), paced.table],
      notes: [
        'Upstream: nginx serving a 1 KB file (a few µs of CPU per request), so the proxy is the bottleneck.',
        'proxy CPU µs/req: user+system CPU of the proxy process tree (/proc/<pid>/stat) divided by the requests served; the steadiest figure on a VM with CPU steal.',
        'Ratios are medians of per-round ratios (same round, alternating targets).',
      ],
    };
  },
};
