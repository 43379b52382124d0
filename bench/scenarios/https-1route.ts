// One route, no plugins, over TLS: the gateway's HTTPS listener (certificate from an ssl object, chosen by SNI)
// next to nginx terminating TLS with the same certificate, both with TLS keep-alive (wrk reuses its
// connections, so the handshake cost is amortised and the figure is the per-request record-layer and proxy
// cost). The same two proxies in cleartext run in the same rounds, so the TLS overhead of each is visible.
import path from 'node:path';
import { freePort } from '../../test/helpers/ports.ts';
import { compareTargets, statsSummary, statsTable, type Target } from '../lib/compare.ts';
import { route, startGateway } from '../lib/gateway.ts';
import { startHttpPeers, startUpstream, directTarget } from '../lib/http-setup.ts';
import { startNginxHttpsProxy } from '../lib/nginx.ts';
import { track } from '../lib/service.ts';
import { makeCert, waitHandshake } from '../lib/tls.ts';
import type { Scenario } from '../lib/types.ts';

const CONNECTIONS = 50;
/** wrk sends the URL's host as SNI; localhost resolves to 127.0.0.1 here and is a valid ssl `snis` entry. */
const SNI = 'localhost';

export const https1Route: Scenario = {
  name: 'https-1route',
  title: 'HTTPS, one route, no plugins (TLS keep-alive, 1 KB responses, wrk -t1 -c50) vs nginx HTTPS',
  budgetSec: 240,
  skipReason: async () => null,
  run: async (ctx) => {
    const tls = makeCert(ctx.tmp, SNI);
    const up = await startUpstream(ctx);
    const [gwHttps, nginxHttps] = [await freePort(), await freePort()];
    const [gw, nginx, peers] = await Promise.all([
      track(
        ctx.services,
        startGateway({
          dir: path.join(ctx.tmp, 'gateway'),
          httpsPort: gwHttps,
          standalone: { routes: [route('1', '/*', up.port)] },
        }),
      ),
      track(ctx.services, startNginxHttpsProxy(path.join(ctx.tmp, 'nginx-https'), nginxHttps, up.port, tls)),
      startHttpPeers(ctx, up.port, ['nginx']),
    ]);
    // Through the Admin API: an ssl object already in apisix.yaml at startup is not served until the next config
    // change (src/main.ts adds the TLS runtime builder after the runtime manager's first build).
    const put = await gw.admin('PUT', '/ssls/1', { cert: tls.cert, key: tls.key, snis: [SNI] });
    if (put.status >= 300) throw new Error(`PUT /ssls/1: ${put.status} ${JSON.stringify(put.body)}`);
    await waitHandshake(gwHttps, SNI);
    // `nginx` is the reference of the × nginx column: the HTTPS peer. The cleartext pair shows TLS's share.
    const targets: Target[] = [
      directTarget(up.port),
      { name: 'nginx', url: `https://${SNI}:${nginxHttps}`, pid: nginx.pid },
      { name: 'gateway', url: `https://${SNI}:${gwHttps}`, pid: gw.pid },
      { ...peers[0]!, name: 'nginx-http' },
      { name: 'gateway-http', url: `http://127.0.0.1:${gw.port}`, pid: gw.pid },
    ];
    const stats = await compareTargets(ctx, targets, { path: '/', connections: CONNECTIONS }, { upstreamPid: up.svc.pid, label: 'tls keep-alive' });
    const by = (n: string) => stats.find((s) => s.name === n)!;
    const tlsCost = (a: string, b: string) => Math.round((by(a).cpuUsPerReq - by(b).cpuUsPerReq) * 10) / 10;
    return {
      summary: {
        saturation: statsSummary(stats),
        tls_cpu_us_per_req: { gateway: tlsCost('gateway', 'gateway-http'), nginx: tlsCost('nginx', 'nginx-http') },
      },
      tables: [statsTable('Saturation over TLS (closed loop, 50 keep-alive connections; nginx = nginx HTTPS)', stats)],
      notes: [
        'Upstream: nginx serving a 1 KB file over plain HTTP; both proxies keep 64 idle upstream connections.',
        `TLS: one self-signed ECDSA P-256 certificate for ${SNI}, served by the gateway from an ssl object (SNI lookup per handshake) and by nginx from files; wrk negotiates TLS 1.3 and keeps its 50 connections open, so handshakes are a one-off.`,
        'proxy CPU µs/req: user+system CPU of the proxy process tree (/proc/<pid>/stat) divided by the requests served. tls_cpu_us_per_req = HTTPS minus cleartext CPU per request of the same proxy in the same run.',
        'gateway and gateway-http are the same process (two listeners); nginx-http is a separate nginx with the same proxy config without TLS.',
      ],
    };
  },
};
