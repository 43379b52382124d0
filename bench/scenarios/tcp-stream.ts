// TCP stream proxy: the gateway's stream listener next to nginx stream and haproxy in tcp mode, all in front
// of the static nginx upstream (spoken to as HTTP through the TCP proxies, so wrk drives the load):
// new connections per second (one 1 KB request per connection, `Connection: close`) and throughput
// (1 MB responses over 4 keep-alive connections).
import path from 'node:path';
import { freePort } from '../../test/helpers/ports.ts';
import { compareTargets, statsSummary, statsTable, type Target } from '../lib/compare.ts';
import { route, startGateway } from '../lib/gateway.ts';
import { startHaproxy } from '../lib/haproxy.ts';
import { directTarget, startUpstream } from '../lib/http-setup.ts';
import { startNginxStream } from '../lib/nginx.ts';
import { track } from '../lib/service.ts';
import type { Scenario } from '../lib/types.ts';

export const tcpStream: Scenario = {
  name: 'tcp-stream',
  title: 'TCP stream proxy: connections/s and throughput',
  budgetSec: 180,
  skipReason: async () => null,
  run: async (ctx) => {
    const up = await startUpstream(ctx);
    const [streamPort, nginxPort, haPort] = [await freePort(), await freePort(), await freePort()];
    const [gw, nginx, ha] = await Promise.all([
      track(ctx.services, startGateway({
        dir: path.join(ctx.tmp, 'gateway'),
        streamPorts: [streamPort],
        standalone: {
          routes: [route('1', '/*', up.port)],
          stream_routes: [{ id: '1', server_port: streamPort, upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${up.port}`]: 1 } } }],
        },
      })),
      track(ctx.services, startNginxStream(path.join(ctx.tmp, 'nginx-stream'), nginxPort, up.port)),
      track(ctx.services, startHaproxy(path.join(ctx.tmp, 'haproxy-tcp'), 'tcp', haPort, up.port)),
    ]);
    const targets: Target[] = [
      directTarget(up.port),
      { name: 'gateway', url: `http://127.0.0.1:${streamPort}`, pid: gw.pid },
      { name: 'nginx', url: `http://127.0.0.1:${nginxPort}`, pid: nginx.pid },
      { name: 'haproxy', url: `http://127.0.0.1:${haPort}`, pid: ha.pid },
    ];
    const conns = await compareTargets(ctx, targets, { path: '/', connections: 20, headers: ['Connection: close'] }, {
      upstreamPid: up.svc.pid,
      label: 'conn/s',
    });
    const bulk = await compareTargets(ctx, targets, { path: '/big', connections: 4 }, { upstreamPid: up.svc.pid, label: 'MB/s' });
    return {
      summary: { connections_per_s: statsSummary(conns), throughput_1mb: statsSummary(bulk) },
      tables: [
        statsTable('New connections per second (one 1 KB request per connection, wrk -c20, Connection: close)', conns),
        statsTable('Throughput, 1 MB responses over 4 keep-alive connections (CPU per request = per MB)', bulk, { throughput: true }),
      ],
      notes: [
        'The TCP proxies forward HTTP bytes they do not parse; req/s in the first table is connections/s through the proxy.',
        'Ratios compare req/s; for the throughput table that is the same as MB/s.',
      ],
    };
  },
};
