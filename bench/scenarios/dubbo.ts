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
import { fileURLToPath } from 'node:url';
import { freePort } from '../../test/helpers/ports.ts';
import { compareTargets, statsSummary, statsTable } from '../lib/compare.ts';
import { startGateway } from '../lib/gateway.ts';
import { processTree, sampleTree } from '../lib/procfs.ts';
import { spawnService, track, waitListening, type Service } from '../lib/service.ts';
import { fmt, fmtInt, median, round } from '../lib/stats.ts';
import type { Scenario, ScenarioContext, Table } from '../lib/types.ts';

const PEERS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../peers');
const SERVICE = 'org.apache.dubbo.bench.BenchService';
const CONNECTIONS = 4;
const INFLIGHT = 32;

interface LoadRun {
  calls: number;
  errors: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  gatewayCpuUsPerCall: number;
  providerCpuUsPerCall: number;
}

function node(name: string, script: string, args: string[]): Service {
  return spawnService(name, process.execPath, [path.join(PEERS, script), ...args], { env: { ...process.env, NODE_ENV: 'production' } });
}

async function dubboLoad(target: string, seconds: number, gatewayPid: number, providerPid: number): Promise<LoadRun> {
  const gwTree = processTree(gatewayPid);
  const upTree = processTree(providerPid);
  const [g0, u0] = [sampleTree(gwTree), sampleTree(upTree)];
  const client = node('dubbo-load', 'dubbo-load.ts', [target, String(CONNECTIONS), String(INFLIGHT), String(seconds)]);
  const deadline = Date.now() + (seconds + 30) * 1000;
  while (client.alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const [g1, u1] = [sampleTree(gwTree), sampleTree(upTree)];
  if (client.alive()) await client.stop();
  const line = client.output().trim().split('\n').pop() ?? '';
  let r: { calls: number; errors: number; seconds: number; p50Ms: number; p99Ms: number };
  try {
    r = JSON.parse(line);
  } catch {
    throw new Error(`dubbo load client failed:\n${client.output().slice(-2000)}`);
  }
  const n = Math.max(1, r.calls);
  return { ...r, gatewayCpuUsPerCall: (g1.cpuUs - g0.cpuUs) / n, providerCpuUsPerCall: (u1.cpuUs - u0.cpuUs) / n };
}

async function l4Rounds(ctx: ScenarioContext, targets: { name: string; addr: string }[], gatewayPid: number, providerPid: number): Promise<Map<string, LoadRun[]>> {
  const runs = new Map<string, LoadRun[]>(targets.map((t) => [t.name, []]));
  if (ctx.warmupSec > 0) for (const t of targets) await dubboLoad(t.addr, ctx.warmupSec, gatewayPid, providerPid);
  for (let r = 0; r < ctx.rounds; r++) {
    for (const t of targets) {
      const run = await dubboLoad(t.addr, ctx.durationSec, gatewayPid, providerPid);
      runs.get(t.name)!.push(run);
      ctx.log(`  dubbo L4 round ${r + 1}/${ctx.rounds} ${t.name.padEnd(8)} ${fmtInt(run.calls / run.seconds).padStart(8)} calls/s  p99 ${fmt(run.p99Ms)} ms  gateway cpu ${fmt(run.gatewayCpuUsPerCall, 1)} µs/call`);
    }
  }
  return runs;
}

function l4Table(runs: Map<string, LoadRun[]>): { table: Table; summary: Record<string, unknown> } {
  const direct = runs.get('direct')!;
  const rows: string[][] = [];
  const summary: Record<string, unknown> = {};
  for (const [name, rs] of runs) {
    const cps = rs.map((x) => x.calls / x.seconds);
    const ratios = rs.map((x, i) => x.calls / x.seconds / (direct[i]!.calls / direct[i]!.seconds));
    // The gateway idles during direct runs: its CPU there is not a cost per call.
    const gwCpu = name === 'direct' ? NaN : median(rs.map((x) => x.gatewayCpuUsPerCall));
    const upCpu = median(rs.map((x) => x.providerCpuUsPerCall));
    const errors = rs.reduce((a, x) => a + x.errors, 0);
    rows.push([name, `${fmtInt(median(cps))} (${fmtInt(Math.min(...cps))}-${fmtInt(Math.max(...cps))})`, fmt(median(ratios)), fmt(median(rs.map((x) => x.p50Ms))), fmt(median(rs.map((x) => x.p99Ms))), fmt(gwCpu, 1), fmt(upCpu, 1), String(errors)]);
    summary[name] = {
      calls_per_s_median: round(median(cps), 0),
      calls_per_s_rounds: cps.map((x) => round(x, 0)),
      ratio_to_direct: round(median(ratios), 3),
      p50_ms: round(median(rs.map((x) => x.p50Ms)), 3),
      p99_ms: round(median(rs.map((x) => x.p99Ms)), 3),
      gateway_cpu_us_per_call: round(gwCpu, 1),
      provider_cpu_us_per_call: round(upCpu, 1),
      errors,
    };
  }
  return {
    table: {
      title: `Dubbo 2 (hessian2) calls over an L4 stream route, ${CONNECTIONS} connections x ${INFLIGHT} calls in flight`,
      columns: ['target', 'calls/s median (min-max)', '× direct', 'p50 ms', 'p99 ms', 'gateway CPU µs/call', 'provider CPU µs/call', 'errors'],
      rows,
    },
    summary,
  };
}

export const dubbo: Scenario = {
  name: 'dubbo',
  title: 'Dubbo: L4 stream route (gateway vs direct) and HTTP to Dubbo (dubbo-proxy, http-dubbo)',
  budgetSec: 240,
  skipReason: async () => null,
  run: async (ctx) => {
    const [upPort, streamPort] = [await freePort(), await freePort()];
    const provider = node('dubbo-provider', 'dubbo-provider.ts', [String(upPort)]);
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
    const runs = await l4Rounds(ctx, [
      { name: 'direct', addr: `127.0.0.1:${upPort}` },
      { name: 'gateway', addr: `127.0.0.1:${streamPort}` },
    ], gw.pid, provider.pid);
    const l4 = l4Table(runs);

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
