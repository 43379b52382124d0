// The two HTTP/1.1 engines of the gateway side by side (switchyard.http1_engine node vs socket, protocols/http1)
// on the http-1route load, the socket engine with the socket-level upstream client too
// (switchyard.upstream_http1_client: socket, src/upstream/h1), the socket engine with the access log on (to a
// file), and nginx as the reference; then memory per idle keep-alive connection: N clients each send one GET, read the answer and stay
// connected, RSS of each proxy before and after.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../test/helpers/proc.ts';
import { compareTargets, statsSummary, statsTable, type Target } from '../lib/compare.ts';
import { route, startGateway } from '../lib/gateway.ts';
import { directTarget, startHttpPeers, startUpstream } from '../lib/http-setup.ts';
import { processTree, sampleTree } from '../lib/procfs.ts';
import { fdHardLimit, spawnService, track, type Service } from '../lib/service.ts';
import { fmt, fmtInt, mb, round } from '../lib/stats.ts';
import type { Scenario, ScenarioContext } from '../lib/types.ts';

const CONNECTIONS = 50;
const IDLE = 10_000;
const IDLE_SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../peers/http-idle.ts');

function rss(pid: number): number {
  return sampleTree(processTree(pid)).rssBytes;
}

interface IdleFigures {
  name: string;
  connected: number;
  failed: number;
  before: number;
  after: number;
}

async function holdIdle(ctx: ScenarioContext, name: string, pid: number, port: number, count: number): Promise<IdleFigures> {
  const before = rss(pid);
  const client: Service = spawnService(`idle-${name}`, process.execPath, [IDLE_SCRIPT, String(port), String(count)], { env: { ...process.env, NODE_ENV: 'production' } });
  try {
    const m = await waitFor(() => {
      if (!client.alive()) throw new Error(`idle client exited: ${client.output().slice(-2000)}`);
      return /connected (\d+) failed (\d+)/.exec(client.output());
    }, 120_000, 100);
    // Let the proxy settle (GC, freed request state) before reading its RSS.
    await new Promise((r) => setTimeout(r, ctx.smoke ? 300 : 3000));
    const after = rss(pid);
    const f = { name, connected: Number(m![1]), failed: Number(m![2]), before, after };
    ctx.log(`  ${name}: ${fmtInt(f.connected)} idle keep-alive connections (${f.failed} failed), RSS ${mb(before)} -> ${mb(after)} MB`);
    return f;
  } finally {
    await client.stop();
  }
}

const perConnKb = (f: IdleFigures) => (f.connected > 0 ? (f.after - f.before) / f.connected / 1024 : NaN);

export const httpEngines: Scenario = {
  name: 'http-engines',
  title: 'HTTP/1.1 engines: node:http vs socket-level (protocols/http1), access log cost, memory per idle keep-alive connection',
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

    const count = Math.min(ctx.smoke ? 100 : IDLE, fdHardLimit() - 400);
    const nginx = peers[0]!;
    const idle: IdleFigures[] = [];
    idle.push(await holdIdle(ctx, 'gateway-node', node.pid, node.port, count));
    idle.push(await holdIdle(ctx, 'gateway-socket', socket.pid, socket.port, count));
    idle.push(await holdIdle(ctx, 'nginx', nginx.pid!, Number(new URL(nginx.url).port), count));
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
        idle_keepalive: idle.map((f) => ({ ...f, before: round(f.before / 1048576, 1), after: round(f.after / 1048576, 1), kb_per_connection: round(perConnKb(f), 2) })),
      },
      tables: [
        statsTable('Saturation (closed loop, 50 connections)', stats),
        {
          title: `Idle keep-alive connections (${fmtInt(count)} requested)`,
          columns: ['proxy', 'connected', 'RSS before MB', 'RSS after MB', 'KB per connection'],
          rows: idle.map((f) => [f.name, fmtInt(f.connected), mb(f.before), mb(f.after), fmt(perConnKb(f), 2)]),
        },
      ],
      notes: [
        `Socket-level upstream client (socket engine both halves): ${fmt(cpu('socket+socket-up') / cpu('nginx'), 2)}x nginx CPU per request, socket engine on undici ${fmt(cpu('gateway-socket') / cpu('nginx'), 2)}x.`,
        `Access log cost on the socket engine: ${fmt(cpu('socket+log') - cpu('gateway-socket'), 1)} µs/req (median rounds).`,
        'Each idle connection sent one GET and read its answer, so it went through the whole request path once; the proxy then holds it (keepalive_timeout 60 s, nginx 75 s).',
        'proxy CPU µs/req: user+system CPU of the proxy process tree (/proc/<pid>/stat) divided by the requests served.',
      ],
    };
  },
};
