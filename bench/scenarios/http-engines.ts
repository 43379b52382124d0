// The two HTTP/1.1 engines of the gateway side by side (switchyard.http1_engine node vs socket, protocols/http1)
// on the http-1route load, the socket engine with the socket-level upstream client too
// (switchyard.upstream_http1_client: socket, src/upstream/h1), the socket engine with the access log on (to a
// file), and nginx as the reference. Memory per idle keep-alive connection of both engines is measured by the
// memory scenario (fresh processes, settled readings): here the gateways have just served saturation load, so an
// RSS reading would measure the garbage of that load, not the connections.
import path from 'node:path';
import { compareTargets, statsSummary, statsTable, type Target } from '../lib/compare.ts';
import { route, startGateway } from '../lib/gateway.ts';
import { directTarget, startHttpPeers, startUpstream } from '../lib/http-setup.ts';
import { track } from '../lib/service.ts';
import { fmt, round } from '../lib/stats.ts';
import type { Scenario } from '../lib/types.ts';

const CONNECTIONS = 50;

export const httpEngines: Scenario = {
  name: 'http-engines',
  title: 'HTTP/1.1 engines: node:http vs socket-level (protocols/http1), access log cost',
  budgetSec: 360,
  skipReason: async () => null,
  run: async (ctx) => {
    const up = await startUpstream(ctx);
    const routes = { routes: [route('1', '/*', up.port)] };
    const gw = (name: string, switchyard: Record<string, unknown>) =>
      track(ctx.services, startGateway({ dir: path.join(ctx.tmp, name), standalone: routes, switchyard }));
    const [node, socket, socketUp, logged, peers] = await Promise.all([
      gw('node', { http1_engine: 'node', upstream_http1_client: 'undici' }),
      gw('socket', { http1_engine: 'socket', upstream_http1_client: 'undici' }),
      gw('socket-up', { http1_engine: 'socket', upstream_http1_client: 'socket' }),
      gw('socket-log', { http1_engine: 'socket', upstream_http1_client: 'undici', access_log: { enable: true, path: path.join(ctx.tmp, 'access.log') } }),
      startHttpPeers(ctx, up.port, ['nginx']),
    ]);
    const targets: Target[] = [
      directTarget(up.port),
      { name: 'gateway-node', url: `http://127.0.0.1:${node.port}`, pid: node.pid },
      { name: 'gateway-socket', url: `http://127.0.0.1:${socket.port}`, pid: socket.pid },
      { name: 'socket+socket-up', url: `http://127.0.0.1:${socketUp.port}`, pid: socketUp.pid },
      { name: 'socket+log', url: `http://127.0.0.1:${logged.port}`, pid: logged.pid },
      ...peers,
    ];
    const stats = await compareTargets(ctx, targets, { path: '/', connections: CONNECTIONS }, { upstreamPid: up.svc.pid, label: 'saturation' });
    const cpu = (n: string) => stats.find((s) => s.name === n)!.cpuUsPerReq;

    return {
      summary: {
        saturation: statsSummary(stats),
        cpu_us_per_req: {
          node: round(cpu('gateway-node'), 1),
          socket: round(cpu('gateway-socket'), 1),
          socket_socket_upstream: round(cpu('socket+socket-up'), 1),
          socket_access_log: round(cpu('socket+log'), 1),
          nginx: round(cpu('nginx'), 1),
        },
      },
      tables: [
        statsTable('Saturation (closed loop, 50 connections)', stats),
      ],
      notes: [
        `Socket-level upstream client (socket engine both halves): ${fmt(cpu('socket+socket-up') / cpu('nginx'), 2)}x nginx CPU per request, socket engine on undici ${fmt(cpu('gateway-socket') / cpu('nginx'), 2)}x.`,
        `Access log cost on the socket engine: ${fmt(cpu('socket+log') - cpu('gateway-socket'), 1)} µs/req (median rounds).`,
        'Memory per idle keep-alive connection of both engines: the memory scenario (npm run bench -- memory).',
        'proxy CPU µs/req: user+system CPU of the proxy process tree (/proc/<pid>/stat) divided by the requests served.',
      ],
    };
  },
};
