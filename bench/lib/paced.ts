// Latency below saturation. wrk has no rate limit (wrk2 is not packaged), so the load is paced with wrk's Lua
// delay(): each of c connections waits DELAY_MS after every response, giving about c * 1000 / (DELAY_MS +
// latency) req/s. c is chosen for the requested rate; the achieved rate is reported next to it. Latency is
// wrk's per-request histogram; the "added" latency is target minus direct in the same round (median over
// rounds). A closed loop with think time under-reports queueing once a target saturates, so rows whose
// achieved rate falls well short of the offered one are flagged "(short)".
import { compareTargets, type Target, type TargetStats } from './compare.ts';
import { fmt, fmtInt, median, round } from './stats.ts';
import type { ScenarioContext, Table } from './types.ts';
import { pacedScript } from './wrk.ts';

const DELAY_MS = 5;

export interface PacedResult {
  rate: number;
  connections: number;
  stats: TargetStats[];
  table: Table;
  summary: Record<string, unknown>;
}

function added(s: TargetStats, direct: TargetStats | undefined, pick: 'p50' | 'p99'): number {
  if (!direct) return NaN;
  const d: number[] = [];
  for (let i = 0; i < Math.min(s.runs.length, direct.runs.length); i++) {
    d.push(s.runs[i]!.wrk.latencyMs[pick] - direct.runs[i]!.wrk.latencyMs[pick]);
  }
  return median(d);
}

export async function pacedLatency(ctx: ScenarioContext, targets: readonly Target[], rate: number, upstreamPid: number | null): Promise<PacedResult> {
  // One extra millisecond per cycle allows for the response time itself.
  const connections = Math.max(1, Math.round((rate * (DELAY_MS + 1)) / 1000));
  const script = await pacedScript(ctx.tmp, DELAY_MS);
  ctx.log(`  paced pass: ${connections} connections x 1 request per ${DELAY_MS} ms (about ${fmtInt(rate)} req/s)`);
  const stats = await compareTargets(ctx, targets, { path: '/', connections, script }, { upstreamPid, warmupSec: 0, label: 'paced' });
  const direct = stats.find((s) => s.name === 'direct');
  const rows: string[][] = [];
  const summary: Record<string, unknown> = { offered_rps: round(rate, 0), connections, delay_ms: DELAY_MS };
  for (const s of stats) {
    const short = s.rps.median < 0.8 * rate;
    const a50 = added(s, direct, 'p50');
    const a99 = added(s, direct, 'p99');
    rows.push([
      s.name,
      fmtInt(s.rps.median) + (short ? ' (short)' : ''),
      fmt(s.p50Ms, 3),
      fmt(s.p99Ms, 3),
      s.name === 'direct' ? '-' : fmt(a50, 3),
      s.name === 'direct' ? '-' : fmt(a99, 3),
      fmt(s.cpuUsPerReq, 1),
    ]);
    summary[s.name] = {
      achieved_rps: round(s.rps.median, 0),
      short_of_offered: short,
      p50_ms: round(s.p50Ms, 3),
      p99_ms: round(s.p99Ms, 3),
      added_p50_ms: round(a50, 3),
      added_p99_ms: round(a99, 3),
      proxy_cpu_us_per_req: round(s.cpuUsPerReq, 1),
    };
  }
  const table: Table = {
    title: `Latency at a fixed offered load of about ${fmtInt(rate)} req/s (half of the gateway's saturation)`,
    columns: ['target', 'achieved req/s', 'p50 ms', 'p99 ms', 'added p50 ms', 'added p99 ms', 'proxy CPU µs/req'],
    rows,
  };
  return { rate, connections, stats, table, summary };
}
