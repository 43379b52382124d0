// Side-by-side load runs: every target gets a warm-up, then the targets alternate (A B C ... A B C ...) for
// the given number of rounds, so slow phases of a noisy VM hit all of them alike. Per run it records wrk's
// figures and the CPU time the target's process tree (and the upstream's) spent, read from /proc/<pid>/stat.
// Ratios are computed per round (target / reference of the same round), then the median is taken.
import { processTree, sampleTree } from './procfs.ts';
import { fmt, fmtInt, mb, median, round } from './stats.ts';
import type { ScenarioContext, Table } from './types.ts';
import { runWrk, type WrkResult } from './wrk.ts';

export interface Target {
  readonly name: string;
  /** Base URL, e.g. http://127.0.0.1:8080 */
  readonly url: string;
  /** Root pid of the proxy under test; null for "direct" (client straight to the upstream). */
  readonly pid: number | null;
  /** A helper process the target relies on (Redis for the redis policies): its CPU per request is reported apart. */
  readonly sidecarPid?: number;
}

export interface Load {
  path: string;
  connections: number;
  script?: string;
  headers?: string[];
}

export interface RunSample {
  wrk: WrkResult;
  /** Proxy CPU µs per request (NaN for direct). */
  cpuUsPerReq: number;
  upstreamCpuUsPerReq: number;
  /** Sidecar CPU µs per request (NaN without a sidecar). */
  sidecarCpuUsPerReq: number;
  rssBytes: number;
}

export interface TargetStats {
  name: string;
  runs: RunSample[];
  rps: { median: number; min: number; max: number };
  p50Ms: number;
  p99Ms: number;
  cpuUsPerReq: number;
  upstreamCpuUsPerReq: number;
  sidecarCpuUsPerReq: number;
  rssBytes: number;
  errors: number;
  /** Median over rounds of rps / rps(direct) of the same round; NaN without a direct target. */
  vsDirect: number;
  vsNginx: number;
  bytesPerSec: number;
}

async function measure(t: Target, url: string, load: Load, durationSec: number, upstreamPid: number | null): Promise<RunSample> {
  const tree = t.pid === null ? [] : processTree(t.pid);
  const upTree = upstreamPid === null ? [] : processTree(upstreamPid);
  const sideTree = t.sidecarPid === undefined ? [] : processTree(t.sidecarPid);
  const before = sampleTree(tree);
  const upBefore = sampleTree(upTree);
  const sideBefore = sampleTree(sideTree);
  const wrk = await runWrk({ url, connections: load.connections, durationSec, script: load.script, headers: load.headers });
  const after = sampleTree(tree);
  const upAfter = sampleTree(upTree);
  const sideAfter = sampleTree(sideTree);
  const n = Math.max(1, wrk.requests);
  return {
    wrk,
    cpuUsPerReq: t.pid === null ? NaN : (after.cpuUs - before.cpuUs) / n,
    upstreamCpuUsPerReq: upstreamPid === null ? NaN : (upAfter.cpuUs - upBefore.cpuUs) / n,
    sidecarCpuUsPerReq: t.sidecarPid === undefined ? NaN : (sideAfter.cpuUs - sideBefore.cpuUs) / n,
    rssBytes: t.pid === null ? NaN : after.rssBytes,
  };
}

function ratio(a: RunSample[], b: RunSample[] | undefined): number {
  if (!b) return NaN;
  const rs: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) rs.push(a[i]!.wrk.rps / b[i]!.wrk.rps);
  return median(rs);
}

/** Runs the rounds and returns one summary per target, in target order. */
export async function compareTargets(
  ctx: ScenarioContext,
  targets: readonly Target[],
  load: Load,
  opts: { upstreamPid: number | null; rounds?: number; durationSec?: number; warmupSec?: number; label?: string },
): Promise<TargetStats[]> {
  const rounds = opts.rounds ?? ctx.rounds;
  const duration = opts.durationSec ?? ctx.durationSec;
  const warmup = opts.warmupSec ?? ctx.warmupSec;
  const label = opts.label ?? load.path;
  if (warmup > 0) {
    for (const t of targets) await runWrk({ url: t.url + load.path, connections: load.connections, durationSec: warmup, script: load.script, headers: load.headers });
  }
  const runs = new Map<string, RunSample[]>(targets.map((t) => [t.name, []]));
  for (let r = 0; r < rounds; r++) {
    for (const t of targets) {
      const s = await measure(t, t.url + load.path, load, duration, opts.upstreamPid);
      runs.get(t.name)!.push(s);
      ctx.log(`  ${label} round ${r + 1}/${rounds} ${t.name.padEnd(14)} ${fmtInt(s.wrk.rps).padStart(8)} req/s  p99 ${fmt(s.wrk.latencyMs.p99)} ms  cpu ${fmt(s.cpuUsPerReq, 1)} µs/req`);
    }
  }
  const direct = runs.get('direct');
  const nginx = runs.get('nginx') ?? runs.get('nginx-stream');
  return targets.map((t) => {
    const rs = runs.get(t.name)!;
    const rps = rs.map((s) => s.wrk.rps);
    return {
      name: t.name,
      runs: rs,
      rps: { median: median(rps), min: Math.min(...rps), max: Math.max(...rps) },
      p50Ms: median(rs.map((s) => s.wrk.latencyMs.p50)),
      p99Ms: median(rs.map((s) => s.wrk.latencyMs.p99)),
      cpuUsPerReq: median(rs.map((s) => s.cpuUsPerReq)),
      upstreamCpuUsPerReq: median(rs.map((s) => s.upstreamCpuUsPerReq)),
      sidecarCpuUsPerReq: median(rs.map((s) => s.sidecarCpuUsPerReq)),
      rssBytes: Math.max(...rs.map((s) => (Number.isFinite(s.rssBytes) ? s.rssBytes : 0))),
      errors: rs.reduce((a, s) => a + s.wrk.non2xx + s.wrk.errors.connect + s.wrk.errors.read + s.wrk.errors.write + s.wrk.errors.timeout, 0),
      vsDirect: t.name === 'direct' ? 1 : ratio(rs, direct),
      vsNginx: ratio(rs, nginx),
      bytesPerSec: median(rs.map((s) => s.wrk.transferBytesPerSec)),
    };
  });
}

/** The standard table: req/s median (min-max), ratios, latency, CPU per request, RSS, errors. */
export function statsTable(title: string, stats: readonly TargetStats[], opts: { throughput?: boolean } = {}): Table {
  const columns = ['target', 'req/s median (min-max)', '× direct', '× nginx', 'p50 ms', 'p99 ms', 'proxy CPU µs/req', 'RSS MB', 'errors'];
  if (opts.throughput) columns.splice(2, 0, 'MB/s');
  const rows = stats.map((s) => {
    const row = [
      s.name,
      `${fmtInt(s.rps.median)} (${fmtInt(s.rps.min)}-${fmtInt(s.rps.max)})`,
      fmt(s.vsDirect),
      fmt(s.vsNginx),
      fmt(s.p50Ms),
      fmt(s.p99Ms),
      fmt(s.cpuUsPerReq, 1),
      mb(s.rssBytes),
      String(s.errors),
    ];
    if (opts.throughput) row.splice(2, 0, fmt(s.bytesPerSec / 1048576, 0));
    return row;
  });
  return { title, columns, rows };
}

/** JSON form of the stats (no raw wrk output). */
export function statsSummary(stats: readonly TargetStats[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of stats) {
    out[s.name] = {
      rps_median: round(s.rps.median, 0),
      rps_min: round(s.rps.min, 0),
      rps_max: round(s.rps.max, 0),
      rps_rounds: s.runs.map((r) => round(r.wrk.rps, 0)),
      ratio_to_direct: round(s.vsDirect, 3),
      ratio_to_nginx: round(s.vsNginx, 3),
      p50_ms: round(s.p50Ms, 3),
      p99_ms: round(s.p99Ms, 3),
      proxy_cpu_us_per_req: round(s.cpuUsPerReq, 1),
      upstream_cpu_us_per_req: round(s.upstreamCpuUsPerReq, 1),
      ...(Number.isFinite(s.sidecarCpuUsPerReq) ? { sidecar_cpu_us_per_req: round(s.sidecarCpuUsPerReq, 1) } : {}),
      rss_mb: round(s.rssBytes / 1048576, 1),
      errors: s.errors,
      transfer_mb_per_s: round(s.bytesPerSec / 1048576, 1),
    };
  }
  return out;
}
