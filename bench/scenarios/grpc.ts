// gRPC through the gateway: unary calls from a @grpc/grpc-js client over h2c, straight to the @grpc/grpc-js
// upstream and through the gateway (route to `scheme: grpc`), alternating A B per round, with calls/s and the
// CPU time the gateway and the upstream spent per call (/proc); then gRPC-Web unary (binary, HTTP/1.1, wrk
// posting one framed message) through the grpc-web plugin, which has no direct counterpart (the upstream does
// not speak gRPC-Web).
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../test/helpers/ports.ts';
import { compareTargets, statsSummary, statsTable } from '../lib/compare.ts';
import { startGateway } from '../lib/gateway.ts';
import { processTree, sampleTree } from '../lib/procfs.ts';
import { spawnService, track, waitListening, type Service } from '../lib/service.ts';
import { fmt, fmtInt, median, round } from '../lib/stats.ts';
import type { Scenario, ScenarioContext, Table } from '../lib/types.ts';

const PEERS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../peers');
const CONCURRENCY = 32;
/** A framed swytest.EchoRequest{text: "bench"}: flag 0, length 7, field 1 (tag 0x0a), length 5, "bench". */
const WEB_BODY = [0, 0, 0, 0, 7, 0x0a, 5, ...Buffer.from('bench')];

interface LoadRun {
  calls: number;
  errors: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  gatewayCpuUsPerCall: number;
  upstreamCpuUsPerCall: number;
}

function node(name: string, script: string, args: string[]): Service {
  return spawnService(name, process.execPath, [path.join(PEERS, script), ...args], { env: { ...process.env, NODE_ENV: 'production' } });
}

async function grpcLoad(target: string, seconds: number, gatewayPid: number, upstreamPid: number): Promise<LoadRun> {
  const gwTree = processTree(gatewayPid);
  const upTree = processTree(upstreamPid);
  const [g0, u0] = [sampleTree(gwTree), sampleTree(upTree)];
  const client = node('grpc-load', 'grpc-load.ts', [target, String(CONCURRENCY), String(seconds)]);
  const deadline = Date.now() + (seconds + 30) * 1000;
  while (client.alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const [g1, u1] = [sampleTree(gwTree), sampleTree(upTree)];
  if (client.alive()) await client.stop();
  const line = client.output().trim().split('\n').pop() ?? '';
  let r: { calls: number; errors: number; seconds: number; p50Ms: number; p99Ms: number };
  try {
    r = JSON.parse(line);
  } catch {
    throw new Error(`grpc load client failed:\n${client.output().slice(-2000)}`);
  }
  const n = Math.max(1, r.calls);
  return { ...r, gatewayCpuUsPerCall: (g1.cpuUs - g0.cpuUs) / n, upstreamCpuUsPerCall: (u1.cpuUs - u0.cpuUs) / n };
}

async function unaryRounds(ctx: ScenarioContext, targets: { name: string; addr: string }[], gatewayPid: number, upstreamPid: number): Promise<Map<string, LoadRun[]>> {
  const runs = new Map<string, LoadRun[]>(targets.map((t) => [t.name, []]));
  if (ctx.warmupSec > 0) for (const t of targets) await grpcLoad(t.addr, ctx.warmupSec, gatewayPid, upstreamPid);
  for (let r = 0; r < ctx.rounds; r++) {
    for (const t of targets) {
      const run = await grpcLoad(t.addr, ctx.durationSec, gatewayPid, upstreamPid);
      runs.get(t.name)!.push(run);
      const cps = run.calls / run.seconds;
      ctx.log(`  grpc unary round ${r + 1}/${ctx.rounds} ${t.name.padEnd(8)} ${fmtInt(cps).padStart(8)} calls/s  p99 ${fmt(run.p99Ms)} ms  gateway cpu ${fmt(run.gatewayCpuUsPerCall, 1)} µs/call`);
    }
  }
  return runs;
}

function unaryTable(runs: Map<string, LoadRun[]>): { table: Table; summary: Record<string, unknown> } {
  const direct = runs.get('direct')!;
  const rows: string[][] = [];
  const summary: Record<string, unknown> = {};
  for (const [name, rs] of runs) {
    const cps = rs.map((x) => x.calls / x.seconds);
    const ratios = rs.map((x, i) => x.calls / x.seconds / (direct[i]!.calls / direct[i]!.seconds));
    const gwCpu = name === 'direct' ? NaN : median(rs.map((x) => x.gatewayCpuUsPerCall));
    const upCpu = median(rs.map((x) => x.upstreamCpuUsPerCall));
    const errors = rs.reduce((a, x) => a + x.errors, 0);
    rows.push([name, `${fmtInt(median(cps))} (${fmtInt(Math.min(...cps))}-${fmtInt(Math.max(...cps))})`, fmt(median(ratios)), fmt(median(rs.map((x) => x.p50Ms))), fmt(median(rs.map((x) => x.p99Ms))), fmt(gwCpu, 1), fmt(upCpu, 1), String(errors)]);
    summary[name] = {
      calls_per_s_median: round(median(cps), 0),
      calls_per_s_rounds: cps.map((x) => round(x, 0)),
      ratio_to_direct: round(median(ratios), 3),
      p50_ms: round(median(rs.map((x) => x.p50Ms)), 3),
      p99_ms: round(median(rs.map((x) => x.p99Ms)), 3),
      gateway_cpu_us_per_call: round(gwCpu, 1),
      upstream_cpu_us_per_call: round(upCpu, 1),
      errors,
    };
  }
  return {
    table: {
      title: `gRPC unary, @grpc/grpc-js client over h2c, ${CONCURRENCY} calls in flight on one connection`,
      columns: ['target', 'calls/s median (min-max)', '× direct', 'p50 ms', 'p99 ms', 'gateway CPU µs/call', 'upstream CPU µs/call', 'errors'],
      rows,
    },
    summary,
  };
}

export const grpc: Scenario = {
  name: 'grpc',
  title: 'gRPC unary (gateway vs direct) and gRPC-Web unary',
  budgetSec: 240,
  skipReason: async () => null,
  run: async (ctx) => {
    const upPort = await freePort();
    const up = node('grpc-echo', 'grpc-echo.ts', [String(upPort)]);
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
    const runs = await unaryRounds(ctx, [
      { name: 'direct', addr: `127.0.0.1:${upPort}` },
      { name: 'gateway', addr: `127.0.0.1:${gw.port}` },
    ], gw.pid, up.pid);
    const unary = unaryTable(runs);

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
