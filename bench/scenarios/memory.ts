// Resident memory of the gateway process (etcd backend, one worker): idle with one route; with 10,000
// routes; after 10,000 route create/delete cycles through the Admin API; and holding 10,000 idle TCP
// connections through the stream proxy, next to nginx stream and haproxy tcp holding the same connections.
// Then, each on a fresh gateway process (standalone config): 10,000 idle HTTP/1.1 keep-alive connections per
// HTTP/1.1 engine (node:http and the socket-level one) next to nginx, and 10,000 MQTT sessions held through an
// mqtt-proxy stream route (chash on mqtt_client_id) to a real mosquitto, next to nginx stream in front of the
// same broker. A stream proxy needs two descriptors per session, so those counts are capped by the fd hard
// limit of the machine (reported). Method of the per-connection figures: bench/lib/idle-hold.ts; every gateway
// here loads the GC probe (bench/lib/gc-probe.ts), so its readings follow a memory-reducing GC. This is the one
// home of the idle-connection figures (http-engines measures throughput and CPU per request).
import path from 'node:path';
import { freePort } from '../../test/helpers/ports.ts';
import { ETCD_PREFIX, seedEtcd, startEtcdService } from '../lib/etcd.ts';
import { route, startGateway, type GatewayOptions, type GatewayService } from '../lib/gateway.ts';
import { Probe, probeEnv } from '../lib/gc-probe.ts';
import { startHaproxy } from '../lib/haproxy.ts';
import { Client } from '../lib/http-client.ts';
import { startUpstream } from '../lib/http-setup.ts';
import { HOLD_COLUMNS, holdIdle, holdRow, holdSummary, type HoldFigures, type HoldOptions } from '../lib/idle-hold.ts';
import { ensureMosquitto, startMosquitto } from '../lib/mosquitto.ts';
import { startNginxProxy, startNginxStream } from '../lib/nginx.ts';
import { startIdleServer } from '../lib/node-peers.ts';
import { processTree, sampleTree } from '../lib/procfs.ts';
import { fdHardLimit, track, type Service } from '../lib/service.ts';
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

type HoldBase = Omit<HoldOptions, 'kind' | 'pid' | 'port'>;

interface FreshTarget {
  name: string;
  kind: 'http' | 'mqtt';
  svc: Service;
  port: number;
  probe?: Probe;
}

/** A gateway with the GC probe loaded; the HTTP/1.1 engine is always named, so a changed default moves no row. */
async function probedGateway(ctx: ScenarioContext, name: string, o: Omit<GatewayOptions, 'dir' | 'env'>, engine: 'node' | 'socket'): Promise<{ gw: GatewayService; probe: Probe }> {
  const probeDir = path.join(ctx.tmp, name, 'probe');
  const gw = await track(ctx.services, startGateway({ ...o, dir: path.join(ctx.tmp, name), env: probeEnv(probeDir), switchyard: { ...o.switchyard, http1_engine: engine } }));
  return { gw, probe: new Probe(probeDir, gw.pid) };
}

/**
 * Fresh processes for the HTTP and MQTT figures, started together: a gateway per HTTP/1.1 engine (one
 * catch-all route) and nginx in front of the 1 KB upstream; mosquitto, a gateway with an mqtt-proxy stream
 * route (chash on mqtt_client_id) and nginx stream in front of it.
 */
async function startFresh(ctx: ScenarioContext, upstreamPort: number): Promise<FreshTarget[]> {
  ensureMosquitto(ctx.log);
  const [brokerPort, streamPort, nginxPort, nginxStreamPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const brokerUp = track(ctx.services, startMosquitto(path.join(ctx.tmp, 'mosquitto'), brokerPort));
  const mqttRoute = {
    id: 'mqtt',
    server_port: streamPort,
    plugins: { 'mqtt-proxy': { protocol_name: 'MQTT', protocol_level: 4 } },
    upstream: { type: 'chash', key: 'mqtt_client_id', nodes: { [`127.0.0.1:${brokerPort}`]: 1 } },
  };
  const httpGateway = (engine: 'node' | 'socket') => probedGateway(ctx, `gw-http-${engine}`, { standalone: { routes: [route('1', '/*', upstreamPort)] } }, engine);
  const [node, socket, nginx, mqttGw, nginxStream] = await Promise.all([
    httpGateway('node'),
    httpGateway('socket'),
    track(ctx.services, startNginxProxy(path.join(ctx.tmp, 'nginx-http'), nginxPort, upstreamPort)),
    probedGateway(ctx, 'gw-mqtt', { streamPorts: [streamPort], standalone: { routes: [], stream_routes: [mqttRoute] } }, 'socket'),
    brokerUp.then(() => track(ctx.services, startNginxStream(path.join(ctx.tmp, 'nginx-mqtt'), nginxStreamPort, brokerPort))),
  ]);
  await brokerUp;
  return [
    { name: 'gateway (node engine)', kind: 'http', svc: node.gw, port: node.gw.port, probe: node.probe },
    { name: 'gateway (socket engine)', kind: 'http', svc: socket.gw, port: socket.gw.port, probe: socket.probe },
    { name: 'nginx', kind: 'http', svc: nginx, port: nginxPort },
    { name: 'gateway (mqtt-proxy)', kind: 'mqtt', svc: mqttGw.gw, port: streamPort, probe: mqttGw.probe },
    { name: 'nginx stream', kind: 'mqtt', svc: nginxStream, port: nginxStreamPort },
  ];
}

/** One target at a time; each is stopped after its measurement (its memory and descriptors are freed). */
async function holdFresh(ctx: ScenarioContext, targets: FreshTarget[], http: HoldBase, mqtt: HoldBase): Promise<Record<'http' | 'mqtt', HoldFigures[]>> {
  const out: Record<'http' | 'mqtt', HoldFigures[]> = { http: [], mqtt: [] };
  for (const t of targets) {
    try {
      out[t.kind].push(await holdIdle(ctx, t.name, { ...(t.kind === 'http' ? http : mqtt), kind: t.kind, pid: t.svc.pid, port: t.port, probe: t.probe }));
    } finally {
      await t.svc.stop();
    }
  }
  return out;
}

export const memory: Scenario = {
  name: 'memory',
  title: 'Memory (RSS): idle, 10,000 routes, route create/delete cycles, 10,000 idle TCP connections, HTTP keep-alive connections and MQTT sessions',
  budgetSec: 540,
  skipReason: async () => null,
  run: async (ctx) => {
    const n = ctx.smoke ? 1_000 : ROUTES;
    const cycles = ctx.smoke ? 20 : CYCLES;
    const settle = ctx.smoke ? 200 : 3000;
    const fdLimit = fdHardLimit();
    const streamCap = Math.floor((fdLimit - 400) / 2);
    const idleCount = Math.min(ctx.smoke ? 100 : IDLE_CONNECTIONS, streamCap);
    const httpCount = Math.min(ctx.smoke ? 100 : IDLE_CONNECTIONS, fdLimit - 400);
    const hold: HoldBase = { count: idleCount, settleMs: ctx.smoke ? 100 : 2000, afterGcMs: ctx.smoke ? 50 : 1000, samples: ctx.smoke ? 1 : 5, warmup: ctx.smoke ? 0 : 200 };
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
    const { gw, probe } = await probedGateway(ctx, 'gateway', { etcd: { endpoint: etcd.endpoint, prefix: ETCD_PREFIX }, streamPorts: [streamPort] }, 'socket');
    const client = new Client(gw.port, 2);
    const figures: Record<string, number> = {};
    const tcp: HoldFigures[] = [];
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

      tcp.push(await holdIdle(ctx, 'gateway', { ...hold, kind: 'tcp', pid: gw.pid, port: streamPort, probe }));
      const nginxPort = await freePort();
      const nginx = await track(ctx.services, startNginxStream(path.join(ctx.tmp, 'nginx-stream'), nginxPort, idlePort));
      tcp.push(await holdIdle(ctx, 'nginx', { ...hold, kind: 'tcp', pid: nginx.pid, port: nginxPort }));
      const haPort = await freePort();
      const ha = await track(ctx.services, startHaproxy(path.join(ctx.tmp, 'haproxy-tcp'), 'tcp', haPort, idlePort));
      tcp.push(await holdIdle(ctx, 'haproxy', { ...hold, kind: 'tcp', pid: ha.pid, port: haPort }));
    } finally {
      await client.close();
    }
    // The etcd-backed gateway (grown by the create/delete cycles) is not needed for the fresh-process figures.
    await gw.stop();
    const { http, mqtt } = await holdFresh(ctx, await startFresh(ctx, up.port), { ...hold, count: httpCount }, hold);

    const capNote =
      `The fd hard limit here is ${fmtInt(fdLimit)} (ulimit -Hn): a stream proxy holds two descriptors per session, so TCP and MQTT counts are ` +
      `capped at (limit - 400) / 2 = ${fmtInt(streamCap)}; HTTP keep-alive connections need one each (cap ${fmtInt(fdLimit - 400)}).`;
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
        idle_connections: Object.fromEntries(tcp.map((f) => [f.name, holdSummary(f)])),
        http_idle_keepalive: Object.fromEntries(http.map((f) => [f.name, holdSummary(f)])),
        mqtt_sessions: Object.fromEntries(mqtt.map((f) => [f.name, holdSummary(f)])),
        fd_hard_limit: fdLimit,
        settle_ms: hold.settleMs,
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
        { title: 'Idle TCP connections held through the stream proxy (the gateway above, after the cycles)', columns: HOLD_COLUMNS, rows: tcp.map(holdRow) },
        { title: 'Idle HTTP/1.1 keep-alive connections (fresh gateway per engine, one catch-all route)', columns: HOLD_COLUMNS, rows: http.map(holdRow) },
        { title: 'Idle MQTT sessions (mqtt-proxy stream route, chash on mqtt_client_id) to mosquitto', columns: HOLD_COLUMNS, rows: mqtt.map(holdRow) },
      ],
      notes: [
        `RSS of the proxy's process tree (/proc/<pid>/stat); each reading is the median of ${hold.samples} samples 0.4 s apart after ${hold.settleMs / 1000} s of settle ` +
          `(twice that after close), and in a gateway after a memory-reducing full GC forced through the probe (bench/lib/gc-probe.ts): ` +
          `without it the gateway's RSS carries garbage and a grown young generation that a later GC sheds at an unpredictable moment ` +
          `(tens of MB, more than the connections themselves). "KB per connection" is (RSS with all - before) / connections, ` +
          `"marginal" is (RSS with all - RSS with the first half) / second half, each half opened by its own client process after ` +
          `${hold.warmup} warm-up connections were opened and closed; "heap used KB" is V8's heap used per connection after the same GC; ` +
          `"growth returned" is (RSS with all - after close) / (RSS with all - before).`,
        `TCP: each idle connection sent one byte and got it echoed by the upstream, so it is proxied end to end, then stays silent. ` +
          `The gateway row is read in the process the create/delete cycles grew (the probe's GC gives most of that growth back before ` +
          `the first reading, free space in its allocators may remain); the MQTT table (a fresh process, the same stream proxy plus ` +
          `mqtt-proxy) is the per-session figure to quote.`,
        `HTTP: each connection sent one GET, read the 1 KB answer and stays open (keepalive_timeout 60 s, nginx 75 s).`,
        `MQTT: each session sent an MQTT 3.1.1 CONNECT (keep alive 0, own client id) and got mosquitto's CONNACK through the proxy, then stays silent; ` +
          `nginx stream forwards the same bytes without reading them.`,
        capNote,
      ],
    };
  },
};
