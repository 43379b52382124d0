// Resident memory of the gateway process (etcd backend, one worker): idle with one route; with 10,000
// routes; after 10,000 route create/delete cycles through the Admin API; and holding 10,000 idle TCP
// connections through the stream proxy (think idle MQTT clients), next to nginx stream and haproxy tcp
// holding the same connections. A proxy needs two descriptors per connection, so the connection count is
// capped by the fd hard limit of the machine (reported).
import path from 'node:path';
import { freePort } from '../../test/helpers/ports.ts';
import { ETCD_PREFIX, seedEtcd, startEtcdService } from '../lib/etcd.ts';
import { startGateway, type GatewayService } from '../lib/gateway.ts';
import { startHaproxy } from '../lib/haproxy.ts';
import { Client } from '../lib/http-client.ts';
import { startUpstream } from '../lib/http-setup.ts';
import { startNginxStream } from '../lib/nginx.ts';
import { openIdleConnections, startIdleServer } from '../lib/node-peers.ts';
import { processTree, sampleTree } from '../lib/procfs.ts';
import { fdHardLimit, type Service } from '../lib/service.ts';
import { fmt, fmtInt, mb, round } from '../lib/stats.ts';
import type { Scenario, ScenarioContext } from '../lib/types.ts';

const ROUTES = 10_000;
const CYCLES = 10_000;
const IDLE_CONNECTIONS = 10_000;
const ADMIN_CONCURRENCY = 8;
/** The create/delete cycles stop at this many seconds even if fewer than CYCLES were done (reported). */
const CYCLE_CAP_SEC = 45;

function rss(pid: number): number {
  return sampleTree(processTree(pid)).rssBytes;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs up to `cycles` create+delete pairs, ADMIN_CONCURRENCY at a time, for at most capSec; returns the pairs done. */
async function createDeleteCycles(gw: GatewayService, cycles: number, capSec: number): Promise<number> {
  let next = 0;
  let done = 0;
  const deadline = performance.now() + capSec * 1000;
  const worker = async () => {
    while (next < cycles && performance.now() < deadline) {
      const id = `c${next++}`;
      const a = await gw.admin('PUT', `/routes/${id}`, { uri: `/c/${id}`, upstream_id: '1' });
      if (a.status >= 300) throw new Error(`PUT /routes/${id} -> ${a.status}`);
      const b = await gw.admin('DELETE', `/routes/${id}`);
      if (b.status >= 300) throw new Error(`DELETE /routes/${id} -> ${b.status}`);
      done++;
    }
  };
  const workers: Promise<void>[] = [];
  for (let i = 0; i < ADMIN_CONCURRENCY; i++) workers.push(worker());
  await Promise.all(workers);
  return done;
}

interface IdleFigures {
  before: number;
  after: number;
  connected: number;
  failed: number;
}

async function holdIdle(ctx: ScenarioContext, proxy: Service, port: number, count: number, settleMs: number): Promise<IdleFigures> {
  const before = rss(proxy.pid);
  const { client, connected, failed } = await openIdleConnections(port, count, 120_000);
  try {
    await sleep(settleMs);
    const after = rss(proxy.pid);
    ctx.log(`  ${proxy.name}: ${fmtInt(connected)} idle connections (${failed} failed), RSS ${mb(before)} -> ${mb(after)} MB`);
    return { before, after, connected, failed };
  } finally {
    await client.stop();
  }
}

export const memory: Scenario = {
  name: 'memory',
  title: 'Memory (RSS): idle, 10,000 routes, after 10,000 route create/delete cycles, 10,000 idle TCP connections',
  budgetSec: 240,
  skipReason: async () => null,
  run: async (ctx) => {
    const n = ctx.smoke ? 1_000 : ROUTES;
    const cycles = ctx.smoke ? 20 : CYCLES;
    const settle = ctx.smoke ? 200 : 3000;
    const idleCount = Math.min(ctx.smoke ? 100 : IDLE_CONNECTIONS, Math.floor((fdHardLimit() - 400) / 2));
    const { etcd, svc: etcdSvc } = await startEtcdService();
    ctx.services.push(etcdSvc);
    const up = await startUpstream(ctx);
    const idlePort = await freePort();
    ctx.services.push(await startIdleServer(idlePort));
    const streamPort = await freePort();
    await seedEtcd(etcd.endpoint, ETCD_PREFIX, [
      ['upstreams', '1', { id: '1', type: 'roundrobin', nodes: { [`127.0.0.1:${up.port}`]: 1 } }],
      ['routes', 'base', { id: 'base', uri: '/base', upstream_id: '1' }],
      ['stream_routes', 's1', { id: 's1', server_port: streamPort, upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${idlePort}`]: 1 } } }],
    ]);
    const gw = await startGateway({ dir: path.join(ctx.tmp, 'gateway'), etcd: { endpoint: etcd.endpoint, prefix: ETCD_PREFIX }, streamPorts: [streamPort] });
    ctx.services.push(gw);
    const client = new Client(gw.port, 2);
    const figures: Record<string, number> = {};
    const idle: Record<string, IdleFigures> = {};
    try {
      await client.waitStatus('/base', 200, 30_000);
      await sleep(settle);
      figures.idle = rss(gw.pid);
      ctx.log(`  idle: ${mb(figures.idle)} MB`);

      const items: [string, string, unknown][] = [];
      for (let i = 0; i < n; i++) items.push(['routes', `r${i}`, { id: `r${i}`, uri: `/r/${i}`, upstream_id: '1' }]);
      await seedEtcd(etcd.endpoint, ETCD_PREFIX, items);
      await client.waitStatus(`/r/${n - 1}`, 200, 60_000);
      await sleep(settle);
      figures.routes = rss(gw.pid);
      ctx.log(`  ${fmtInt(n)} routes: ${mb(figures.routes)} MB`);

      const t0 = performance.now();
      figures.cycles_done = await createDeleteCycles(gw, cycles, ctx.smoke ? 10 : CYCLE_CAP_SEC);
      const cycleSec = (performance.now() - t0) / 1000;
      await gw.admin('PUT', '/routes/marker', { uri: '/marker', upstream_id: '1' });
      await client.waitStatus('/marker', 200, 30_000);
      await sleep(settle);
      figures.cycles = rss(gw.pid);
      figures.cycle_seconds = cycleSec;
      ctx.log(`  after ${fmtInt(figures.cycles_done)} create/delete cycles (${fmt(cycleSec, 1)} s): ${mb(figures.cycles)} MB`);

      idle.gateway = await holdIdle(ctx, gw, streamPort, idleCount, settle);
      const nginxPort = await freePort();
      const nginx = await startNginxStream(path.join(ctx.tmp, 'nginx-stream'), nginxPort, idlePort);
      ctx.services.push(nginx);
      idle.nginx = await holdIdle(ctx, nginx, nginxPort, idleCount, settle);
      const haPort = await freePort();
      const ha = await startHaproxy(path.join(ctx.tmp, 'haproxy-tcp'), 'tcp', haPort, idlePort);
      ctx.services.push(ha);
      idle.haproxy = await holdIdle(ctx, ha, haPort, idleCount, settle);
    } finally {
      await client.close();
    }
    const perConn = (f: IdleFigures) => (f.connected > 0 ? (f.after - f.before) / f.connected / 1024 : NaN);
    const idleRows = Object.entries(idle).map(([name, f]) => [
      name,
      `${fmtInt(f.connected)}${f.failed > 0 ? ` (${f.failed} failed)` : ''}`,
      mb(f.before),
      mb(f.after),
      fmt(perConn(f), 1),
    ]);
    return {
      summary: {
        routes: n,
        cycles_requested: cycles,
        cycles_done: figures.cycles_done,
        gateway_rss_mb: {
          idle_1_route: round(figures.idle! / 1048576, 1),
          with_routes: round(figures.routes! / 1048576, 1),
          after_cycles: round(figures.cycles! / 1048576, 1),
        },
        cycle_seconds: round(figures.cycle_seconds!, 1),
        idle_connections: Object.fromEntries(
          Object.entries(idle).map(([k, f]) => [
            k,
            { connected: f.connected, failed: f.failed, rss_before_mb: round(f.before / 1048576, 1), rss_after_mb: round(f.after / 1048576, 1), kb_per_connection: round(perConn(f), 2) },
          ]),
        ),
        fd_hard_limit: fdHardLimit(),
      },
      tables: [
        {
          title: 'Gateway RSS (one worker process, etcd backend)',
          columns: ['state', 'RSS MB'],
          rows: [
            ['idle, 1 route', mb(figures.idle!)],
            [`${fmtInt(n)} routes`, mb(figures.routes!)],
            [
              `after ${fmtInt(figures.cycles_done!)} route create/delete cycles (Admin API, ${ADMIN_CONCURRENCY} in flight, ${fmt(figures.cycle_seconds!, 1)} s${figures.cycles_done! < cycles ? `, capped at ${CYCLE_CAP_SEC} s` : ''})`,
              mb(figures.cycles!),
            ],
          ],
        },
        {
          title: `Idle TCP connections held through the stream proxy`,
          columns: ['proxy', 'connections', 'RSS before MB', 'RSS after MB', 'KB per connection'],
          rows: idleRows,
        },
      ],
      notes: [
        `RSS is read ${settle / 1000} s after each step settles (/proc/<pid>/stat, whole process tree); nothing forces a GC.`,
        `Each idle connection sent one byte and got it echoed by the upstream, so it is proxied end to end, then stays silent. ` +
          `The count is capped at (fd hard limit ${fdHardLimit()} - 400) / 2 = ${fmtInt(Math.floor((fdHardLimit() - 400) / 2))} here because a proxy holds two descriptors per connection.`,
      ],
    };
  },
};
