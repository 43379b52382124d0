// gRPC through the gateway: unary calls from a @grpc/grpc-js client over h2c, straight to the @grpc/grpc-js
// upstream and through the gateway (route to `scheme: grpc`), alternating A B per round, with calls/s and the
// CPU time the gateway and the upstream spent per call (/proc); then gRPC-Web unary (binary, HTTP/1.1, wrk
// posting one framed message) through the grpc-web plugin, which has no direct counterpart (the upstream does
// not speak gRPC-Web).
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from '../../test/helpers/ports.ts';
import { callRounds, callTable, type CallClient } from '../lib/call-load.ts';
import { compareTargets, statsSummary, statsTable } from '../lib/compare.ts';
import { startGateway } from '../lib/gateway.ts';
import { nodePeer } from '../lib/node-peers.ts';
import { track, waitListening } from '../lib/service.ts';
import type { Scenario } from '../lib/types.ts';

const CONCURRENCY = 32;
/** A framed swytest.EchoRequest{text: "bench"}: flag 0, length 7, field 1 (tag 0x0a), length 5, "bench". */
const WEB_BODY = [0, 0, 0, 0, 7, 0x0a, 5, ...Buffer.from('bench')];

const LOAD: CallClient = {
  name: 'grpc-load',
  script: 'grpc-load.ts',
  args: (target, seconds) => [target, String(CONCURRENCY), String(seconds)],
};

export const grpc: Scenario = {
  name: 'grpc',
  title: 'gRPC unary (gateway vs direct) and gRPC-Web unary',
  budgetSec: 240,
  skipReason: async () => null,
  run: async (ctx) => {
    const upPort = await freePort();
    const up = nodePeer('grpc-echo', 'grpc-echo.ts', [String(upPort)]);
    ctx.services.push(up);
    await waitListening(up, [upPort]);
    const upstream = { type: 'roundrobin', scheme: 'grpc', nodes: { [`127.0.0.1:${upPort}`]: 1 } };
    const gw = await track(ctx.services, startGateway({
      dir: path.join(ctx.tmp, 'gateway'),
      standalone: {
        routes: [
          { id: 'grpc', uri: '/swytest.Echo/*', upstream },
          { id: 'grpc-web', uri: '/grpc/web/*', upstream, plugins: { 'grpc-web': {} } },
        ],
      },
    }));
    const runs = await callRounds(ctx, 'grpc unary', LOAD, [
      { name: 'direct', addr: `127.0.0.1:${upPort}` },
      { name: 'gateway', addr: `127.0.0.1:${gw.port}` },
    ], gw.pid, up.pid);
    const unary = callTable(runs, `gRPC unary, @grpc/grpc-js client over h2c, ${CONCURRENCY} calls in flight on one connection`, 'upstream');

    const script = path.join(ctx.tmp, 'grpc-web.lua');
    await writeFile(script, [
      'wrk.method = "POST"',
      `wrk.body = string.char(${WEB_BODY.join(', ')})`,
      'wrk.headers["Content-Type"] = "application/grpc-web+proto"',
      'wrk.headers["X-Grpc-Web"] = "1"',
      '',
    ].join('\n'));
    const web = await compareTargets(ctx, [{ name: 'gateway', url: `http://127.0.0.1:${gw.port}`, pid: gw.pid }], {
      path: '/grpc/web/swytest.Echo/Unary',
      connections: 20,
      script,
    }, { upstreamPid: up.pid, label: 'grpc-web' });
    return {
      summary: { grpc_unary: unary.summary, grpc_web_unary: statsSummary(web) },
      tables: [unary.table, statsTable('gRPC-Web unary (binary), wrk -c20 over HTTP/1.1 keep-alive, one framed message per POST', web)],
      notes: [
        'The load client is one Node process (grpc-js); at high rates it, not the target, may be the bottleneck: compare CPU per call.',
        'gRPC-Web has no direct row: the upstream speaks gRPC only. Upstream CPU per call shows what the upstream itself costs.',
      ],
    };
  },
};
