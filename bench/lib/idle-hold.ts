// Memory per idle connection of a proxy, measured from outside: RSS of the proxy's process tree before, with
// half of the connections open, with all of them, and after they closed. Each reading waits a settle time and
// takes the median of several samples. A Node proxy started with the GC probe (bench/lib/gc-probe.ts) first
// runs a memory-reducing full GC: without it its RSS carries whatever garbage and grown young generation no GC
// has returned yet (tens of MB after start-up or after opening 10,000 connections, shed at an unpredictable
// later GC), and the per-connection figures swing between runs by more than they measure. So a reading is what
// the process keeps, not what it happens to hold; nginx and haproxy have nothing to collect.
// - total: (all - before) / connections: what opening them cost, one-off growth (code compiled on first use,
//   pools) included.
// - marginal: (all - half) / second-half connections: the slope once the process is warm.
// - returned: the share of that growth given back to the system once all closed and the process settled.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../test/helpers/proc.ts';
import type { Probe } from './gc-probe.ts';
import { openFds, processTree, sampleTree } from './procfs.ts';
import { spawnService, type Service } from './service.ts';
import { fmt, fmtInt, mb, round } from './stats.ts';
import type { ScenarioContext } from './types.ts';

const PEERS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../peers');

/** A bench/peers script that opens `count` connections to `port` and prints "connected <n> failed <m>". */
export type IdleClientKind = 'http' | 'mqtt' | 'tcp';

const SCRIPTS: Record<IdleClientKind, (port: number, count: number, tag: string) => string[]> = {
  http: (port, count) => [path.join(PEERS_DIR, 'http-idle.ts'), String(port), String(count)],
  mqtt: (port, count, tag) => [path.join(PEERS_DIR, 'mqtt-idle.ts'), String(port), String(count), tag],
  tcp: (port, count) => [path.join(PEERS_DIR, 'tcp-idle.ts'), 'client', String(port), String(count)],
};

export interface HoldFigures {
  name: string;
  requested: number;
  connected: number;
  failed: number;
  /** RSS bytes: before, with the first half open, with all open, after all closed. */
  before: number;
  half: number;
  all: number;
  closed: number;
  /** Connections open at the `half` reading. */
  halfConnected: number;
  /** V8 heap used bytes at the same four readings, after the GC (only with a probe). */
  heap: { before: number; half: number; all: number; closed: number } | null;
}

interface Reading {
  rss: number;
  heapUsed: number;
}


function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** After `settleMs` (and the probe's GC, if any), the median RSS of the tree over `samples` readings 0.4 s apart. */
async function reading(o: HoldOptions, settleMs: number): Promise<Reading> {
  await sleep(settleMs);
  let heapUsed = NaN;
  if (o.probe !== undefined) {
    heapUsed = (await o.probe.collect()).heapUsed;
    await sleep(o.afterGcMs);
  }
  const v: number[] = [];
  for (let i = 0; i < o.samples; i++) {
    if (i > 0) await sleep(400);
    v.push(sampleTree(processTree(o.pid)).rssBytes);
  }
  v.sort((a, b) => a - b);
  return { rss: v[Math.floor(v.length / 2)]!, heapUsed };
}

/**
 * Waits until the proxy's descriptors are back to their count before the connections opened (plus a little
 * slack), or stopped falling for 2 s (pooled upstream connections may stay), at most 60 s: under load a proxy
 * may take seconds to close ten thousand sessions, and a reading taken meanwhile would count sessions still
 * open as memory not returned.
 */
async function closedDown(pid: number, fdsBefore: number): Promise<void> {
  const deadline = performance.now() + 60_000;
  let low = Infinity;
  let lowSince = performance.now();
  for (;;) {
    const fds = openFds(processTree(pid));
    if (fds <= fdsBefore + 16 || performance.now() > deadline) return;
    if (fds < low) {
      low = fds;
      lowSince = performance.now();
    } else if (performance.now() - lowSince >= 2000) return;
    await sleep(200);
  }
}

async function openClients(kind: IdleClientKind, port: number, count: number, tag: string): Promise<{ client: Service; connected: number; failed: number }> {
  const client = spawnService(`idle-${kind}-${tag}`, process.execPath, SCRIPTS[kind](port, count, tag), { env: { ...process.env, NODE_ENV: 'production' } });
  try {
    const m = await waitFor(() => {
      if (!client.alive()) throw new Error(`idle client exited: ${client.output().slice(-2000)}`);
      return /connected (\d+) failed (\d+)/.exec(client.output());
    }, 180_000, 100);
    return { client, connected: Number(m![1]), failed: Number(m![2]) };
  } catch (err) {
    await client.stop();
    throw err;
  }
}

export interface HoldOptions {
  kind: IdleClientKind;
  /** Proxy under test: the pid whose process tree is sampled, and the port the clients connect to. */
  pid: number;
  port: number;
  count: number;
  settleMs: number;
  /** RSS samples per reading (median taken), 0.4 s apart. */
  samples: number;
  /** Connections opened and closed first, so code paths are compiled and pools exist before `before`. */
  warmup: number;
  /** The proxy is a Node process started with probeEnv: each reading follows a memory-reducing GC in it. */
  probe?: Probe;
  /** Wait between that GC and the samples: V8 unmaps the pages it freed on a background thread. */
  afterGcMs: number;
}

/** Opens `count` idle connections in two halves (two client processes), reads RSS around them, closes them. */
export async function holdIdle(ctx: ScenarioContext, name: string, o: HoldOptions): Promise<HoldFigures> {
  if (o.warmup > 0) {
    const w = await openClients(o.kind, o.port, o.warmup, `${name}-warm`);
    await w.client.stop();
  }
  const first = Math.ceil(o.count / 2);
  const before = await reading(o, o.settleMs);
  const fdsBefore = openFds(processTree(o.pid));
  const a = await openClients(o.kind, o.port, first, `${name}-a`);
  let b: Awaited<ReturnType<typeof openClients>> | null = null;
  try {
    const half = await reading(o, o.settleMs);
    b = await openClients(o.kind, o.port, o.count - first, `${name}-b`);
    const all = await reading(o, o.settleMs);
    await b.client.stop();
    await a.client.stop();
    await closedDown(o.pid, fdsBefore);
    const closed = await reading(o, o.settleMs * 2);
    const f: HoldFigures = {
      name,
      requested: o.count,
      connected: a.connected + b.connected,
      failed: a.failed + b.failed,
      before: before.rss,
      half: half.rss,
      all: all.rss,
      closed: closed.rss,
      halfConnected: a.connected,
      heap: o.probe === undefined ? null : { before: before.heapUsed, half: half.heapUsed, all: all.heapUsed, closed: closed.heapUsed },
    };
    ctx.log(
      `  ${name}: ${fmtInt(f.connected)} idle ${o.kind} connections (${f.failed} failed), RSS ${mb(f.before)} -> ${mb(f.half)} -> ${mb(f.all)} MB, ` +
        `${fmt(totalKb(f), 2)} KB each (marginal ${fmt(marginalKb(f), 2)}${f.heap !== null ? `, heap used ${fmt(heapKb(f), 2)}` : ''}), ` +
        `${mb(f.closed)} MB after close (${fmt(returnedPercent(f), 0)} % returned)`,
    );
    return f;
  } finally {
    await b?.client.stop();
    await a.client.stop();
  }
}

export function totalKb(f: HoldFigures): number {
  return f.connected > 0 ? (f.all - f.before) / f.connected / 1024 : NaN;
}

export function marginalKb(f: HoldFigures): number {
  const n = f.connected - f.halfConnected;
  return n > 0 ? (f.all - f.half) / n / 1024 : NaN;
}

/** V8 heap used per connection (all - before), after the probe's GC; NaN without a probe. */
export function heapKb(f: HoldFigures): number {
  return f.heap !== null && f.connected > 0 ? (f.heap.all - f.heap.before) / f.connected / 1024 : NaN;
}

/** The share of the RSS growth (all - before) given back once all connections closed; NaN under 1 MB of growth (noise). */
export function returnedPercent(f: HoldFigures): number {
  return f.all - f.before >= 1048576 ? ((f.all - f.closed) / (f.all - f.before)) * 100 : NaN;
}

export const HOLD_COLUMNS = [
  'proxy',
  'connections',
  'RSS before MB',
  'RSS with all MB',
  'KB per connection',
  'marginal KB (2nd half)',
  'heap used KB',
  'RSS after close MB',
  'growth returned',
];

export function holdRow(f: HoldFigures): string[] {
  return [
    f.name,
    `${fmtInt(f.connected)}${f.failed > 0 ? ` (${f.failed} failed)` : ''}`,
    mb(f.before),
    mb(f.all),
    fmt(totalKb(f), 2),
    fmt(marginalKb(f), 2),
    f.heap === null ? '-' : fmt(heapKb(f), 2),
    mb(f.closed),
    Number.isNaN(returnedPercent(f)) ? '-' : `${fmt(returnedPercent(f), 0)} %`,
  ];
}

export function holdSummary(f: HoldFigures): Record<string, number | string> {
  return {
    connected: f.connected,
    failed: f.failed,
    rss_before_mb: round(f.before / 1048576, 1),
    rss_half_mb: round(f.half / 1048576, 1),
    rss_all_mb: round(f.all / 1048576, 1),
    rss_after_close_mb: round(f.closed / 1048576, 1),
    kb_per_connection: round(totalKb(f), 2),
    marginal_kb_per_connection: round(marginalKb(f), 2),
    returned_percent: round(returnedPercent(f), 1),
    ...(f.heap !== null ? { heap_used_kb_per_connection: round(heapKb(f), 2), heap_used_after_close_mb: round(f.heap.closed / 1048576, 1) } : {}),
  };
}
