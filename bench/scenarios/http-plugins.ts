// APISIX's own benchmark case: one route with limit-count (a limit never reached) and prometheus, next to the
// same gateway without plugins, nginx and the upstream alone. Skipped until both plugins are registered.
import path from 'node:path';
import { compareTargets, statsSummary, statsTable, type Target } from '../lib/compare.ts';
import { route, startGateway } from '../lib/gateway.ts';
import { directTarget, startHttpPeers, startUpstream } from '../lib/http-setup.ts';
import { track } from '../lib/service.ts';
import type { Scenario } from '../lib/types.ts';
import { setupBuiltinPlugins } from '../../src/plugin/builtin/index.ts';
import { PluginRegistry } from '../../src/plugin/registry.ts';

const NEEDED = ['limit-count', 'prometheus'];

const PLUGINS = {
  'limit-count': { count: 1_000_000_000, time_window: 60, rejected_code: 503, key: 'remote_addr' },
  prometheus: {},
};

export const httpPlugins: Scenario = {
  name: 'http-plugins',
  title: 'HTTP, one route with limit-count + prometheus (APISIX benchmark case)',
  budgetSec: 150,
  skipReason: async () => {
    const registry = new PluginRegistry();
    setupBuiltinPlugins(registry);
    const missing = NEEDED.filter((n) => registry.definition(n, 'http') === undefined);
    return missing.length === 0 ? null : `plugin(s) not registered in src/plugin/builtin/index.ts yet: ${missing.join(', ')}`;
  },
  run: async (ctx) => {
    const up = await startUpstream(ctx);
    const [plain, withPlugins, peers] = await Promise.all([
      track(ctx.services, startGateway({ dir: path.join(ctx.tmp, 'gw-plain'), standalone: { routes: [route('1', '/*', up.port)] } })),
      track(ctx.services, startGateway({ dir: path.join(ctx.tmp, 'gw-plugins'), standalone: { routes: [route('1', '/*', up.port, { plugins: PLUGINS })] } })),
      startHttpPeers(ctx, up.port, ['nginx']),
    ]);
    const probe = await fetch(`http://127.0.0.1:${withPlugins.port}/`, { signal: AbortSignal.timeout(5000) });
    await probe.arrayBuffer();
    if (probe.status !== 200) throw new Error(`the plugin route answers ${probe.status}, expected 200`);
    const targets: Target[] = [
      directTarget(up.port),
      { name: 'gateway', url: `http://127.0.0.1:${plain.port}`, pid: plain.pid },
      { name: 'gateway+plugins', url: `http://127.0.0.1:${withPlugins.port}`, pid: withPlugins.pid },
      ...peers,
    ];
    const stats = await compareTargets(ctx, targets, { path: '/', connections: 50 }, { upstreamPid: up.svc.pid, label: 'plugins' });
    const a = stats.find((s) => s.name === 'gateway+plugins')!;
    const b = stats.find((s) => s.name === 'gateway')!;
    return {
      summary: { targets: statsSummary(stats), plugins_cpu_us_per_req: Math.round((a.cpuUsPerReq - b.cpuUsPerReq) * 10) / 10 },
      tables: [statsTable('limit-count (never reached) + prometheus on the route', stats)],
      notes: [`The two plugins add ${(a.cpuUsPerReq - b.cpuUsPerReq).toFixed(1)} µs of gateway CPU per request (median rounds).`],
    };
  },
};
