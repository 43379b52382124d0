// Dubbo through the gateway. The gateway runs as its own process with an L4 Dubbo stream route
// (`protocol: {name: dubbo}`) and two HTTP routes calling the same provider (dubbo-proxy: Map in/out, and
// http-dubbo with serialization hessian2: JSON in/out); the provider (hessian.js) and the load clients are
// separate processes.
// - L4: a raw Dubbo 2 client (bench/peers/dubbo-load.ts: 4 connections x 32 calls in flight) straight to the
//   provider and through the stream route, alternating A B per round: calls/s and the CPU the gateway's
//   process tree and the provider spent per call (/proc).
// - HTTP to Dubbo: wrk against each plugin route (no direct counterpart: the provider does not speak HTTP):
//   requests/s and gateway CPU per request.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from '../../test/helpers/ports.ts';
import { callRounds, callTable, type CallClient } from '../lib/call-load.ts';
import { compareTargets, statsSummary, statsTable } from '../lib/compare.ts';
import { startGateway } from '../lib/gateway.ts';
import { nodePeer } from '../lib/node-peers.ts';
import { track, waitListening } from '../lib/service.ts';
import type { Scenario } from '../lib/types.ts';

const SERVICE = 'org.apache.dubbo.bench.BenchService';
const CONNECTIONS = 4;
const INFLIGHT = 32;

const LOAD: CallClient = {
  name: 'dubbo-load',
  script: 'dubbo-load.ts',
  args: (target, seconds) => [target, String(CONNECTIONS), String(INFLIGHT), String(seconds)],
};

export const dubbo: Scenario = {
  name: 'dubbo',
  title: 'Dubbo: L4 stream route (gateway vs direct) and HTTP to Dubbo (dubbo-proxy, http-dubbo)',
  budgetSec: 240,
  skipReason: async () => null,
  run: async (ctx) => {
    const [upPort, streamPort] = [await freePort(), await freePort()];
    const provider = nodePeer('dubbo-provider', 'dubbo-provider.ts', [String(upPort)]);
    ctx.services.push(provider);
    await waitListening(provider, [upPort]);
    const upstream = { type: 'roundrobin', nodes: { [`127.0.0.1:${upPort}`]: 1 } };
    const gw = await track(ctx.services, startGateway({
      dir: path.join(ctx.tmp, 'gateway'),
      streamPorts: [streamPort],
      plugins: ['dubbo-proxy', 'http-dubbo'],
      standalone: {
        routes: [
          { id: 'dubbo-proxy', uri: '/dubbo-proxy', upstream, plugins: { 'dubbo-proxy': { service_name: SERVICE, service_version: '1.0.0', method: 'hello' } } },
          {
            id: 'http-dubbo',
            uri: '/http-dubbo',
            upstream,
            plugins: { 'http-dubbo': { service_name: SERVICE, method: 'echo', params_type_desc: 'Ljava/lang/String;', serialization: 'hessian2' } },
          },
        ],
        stream_routes: [{ id: 'dubbo', server_port: streamPort, protocol: { name: 'dubbo' }, upstream }],
      },
    }));
    const runs = await callRounds(ctx, 'dubbo L4', LOAD, [
      { name: 'direct', addr: `127.0.0.1:${upPort}` },
      { name: 'gateway', addr: `127.0.0.1:${streamPort}` },
    ], gw.pid, provider.pid);
    const l4 = callTable(runs, `Dubbo 2 (hessian2) calls over an L4 stream route, ${CONNECTIONS} connections x ${INFLIGHT} calls in flight`, 'provider');

    const script = path.join(ctx.tmp, 'http-dubbo.lua');
    await writeFile(script, ['wrk.method = "POST"', 'wrk.body = \'["bench"]\'', 'wrk.headers["Content-Type"] = "application/json"', ''].join('\n'));
    const target = [{ name: 'gateway', url: `http://127.0.0.1:${gw.port}`, pid: gw.pid }];
    const proxied = await compareTargets(ctx, target, { path: '/dubbo-proxy', connections: 20 }, { upstreamPid: provider.pid, label: 'dubbo-proxy' });
    const json = await compareTargets(ctx, target, { path: '/http-dubbo', connections: 20, script }, { upstreamPid: provider.pid, label: 'http-dubbo' });
    return {
      summary: { l4: l4.summary, dubbo_proxy: statsSummary(proxied), http_dubbo_hessian2: statsSummary(json) },
      tables: [
        l4.table,
        statsTable('HTTP to Dubbo, dubbo-proxy (headers as a Map in, the Map out), wrk -c20 keep-alive GET', proxied),
        statsTable('HTTP to Dubbo, http-dubbo serialization hessian2 (JSON ["bench"] in, JSON out), wrk -c20 keep-alive POST', json),
      ],
      notes: [
        'The load client and the provider are single Node processes on the same machine; at high rates they, not the gateway, may bound calls/s: compare CPU per call.',
        'The HTTP tables have no direct row (the provider speaks Dubbo only); "upstream CPU" there is the provider.',
      ],
    };
  },
};
