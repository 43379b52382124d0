// Call-rate load runs of the RPC scenarios (grpc, dubbo): a load client from bench/peers that makes calls for
// a number of seconds and prints one JSON line ({calls, errors, seconds, p50Ms, p99Ms}), run against each
// target in turn (A B per round) while the CPU of the gateway's and the upstream's process trees is sampled
// from /proc, then one table of calls/s, ratio to the direct target, latency and CPU per call.
import { nodePeer } from './node-peers.ts';
import { processTree, sampleTree } from './procfs.ts';
import { fmt, fmtInt, median, round } from './stats.ts';
import type { ScenarioContext, Table } from './types.ts';

export interface CallRun {
  calls: number;
  errors: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  gatewayCpuUsPerCall: number;
  upstreamCpuUsPerCall: number;
}

/** A load client: bench/peers/<script> with `args(target, seconds)`. */
export interface CallClient {
  readonly name: string;
  readonly script: string;
  args(target: string, seconds: number): string[];
}

/** One run of `client` against `target` for `seconds`, with the CPU both process trees spent per call. */
export async function callLoad(client: CallClient, target: string, seconds: number, gatewayPid: number, upstreamPid: number): Promise<CallRun> {
  const gwTree = processTree(gatewayPid);
  const upTree = processTree(upstreamPid);
  const [g0, u0] = [sampleTree(gwTree), sampleTree(upTree)];
  const proc = nodePeer(client.name, client.script, client.args(target, seconds));
  const deadline = Date.now() + (seconds + 30) * 1000;
  while (proc.alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const [g1, u1] = [sampleTree(gwTree), sampleTree(upTree)];
  if (proc.alive()) await proc.stop();
  const line = proc.output().trim().split('\n').pop() ?? '';
  let r: { calls: number; errors: number; seconds: number; p50Ms: number; p99Ms: number };
  try {
    r = JSON.parse(line);
  } catch {
    throw new Error(`${client.name} client failed:\n${proc.output().slice(-2000)}`);
  }
  const n = Math.max(1, r.calls);
  return { ...r, gatewayCpuUsPerCall: (g1.cpuUs - g0.cpuUs) / n, upstreamCpuUsPerCall: (u1.cpuUs - u0.cpuUs) / n };
}

/**
 * Warm-up runs, then ctx.rounds rounds over `targets` in order, logged as `<label> round i/n <target> ...`.
 * The first target is the direct one the table compares against.
 */
export async function callRounds(
  ctx: ScenarioContext,
  label: string,
  client: CallClient,
  targets: { name: string; addr: string }[],
  gatewayPid: number,
  upstreamPid: number,
): Promise<Map<string, CallRun[]>> {
  const runs = new Map<string, CallRun[]>(targets.map((t) => [t.name, []]));
  if (ctx.warmupSec > 0) for (const t of targets) await callLoad(client, t.addr, ctx.warmupSec, gatewayPid, upstreamPid);
  for (let r = 0; r < ctx.rounds; r++) {
    for (const t of targets) {
      const run = await callLoad(client, t.addr, ctx.durationSec, gatewayPid, upstreamPid);
      runs.get(t.name)!.push(run);
      ctx.log(`  ${label} round ${r + 1}/${ctx.rounds} ${t.name.padEnd(8)} ${fmtInt(run.calls / run.seconds).padStart(8)} calls/s  p99 ${fmt(run.p99Ms)} ms  gateway cpu ${fmt(run.gatewayCpuUsPerCall, 1)} µs/call`);
    }
  }
  return runs;
}

/**
 * The table and JSON summary of `runs` (keyed by target; `direct` is the reference). `upstreamWord` names the
 * upstream in the CPU column and summary key ("upstream", "provider").
 */
export function callTable(runs: Map<string, CallRun[]>, title: string, upstreamWord: string): { table: Table; summary: Record<string, unknown> } {
  const direct = runs.get('direct')!;
  const rows: string[][] = [];
  const summary: Record<string, unknown> = {};
  for (const [name, rs] of runs) {
    const cps = rs.map((x) => x.calls / x.seconds);
    const ratios = rs.map((x, i) => x.calls / x.seconds / (direct[i]!.calls / direct[i]!.seconds));
    // The gateway idles during direct runs: its CPU there is not a cost per call.
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
      [`${upstreamWord}_cpu_us_per_call`]: round(upCpu, 1),
      errors,
    };
  }
  return {
    table: {
      title,
      columns: ['target', 'calls/s median (min-max)', '× direct', 'p50 ms', 'p99 ms', 'gateway CPU µs/call', `${upstreamWord} CPU µs/call`, 'errors'],
      rows,
    },
    summary,
  };
}
