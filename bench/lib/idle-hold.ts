// Memory per idle connection of a proxy, measured from outside: RSS of the proxy's process tree before, with
// half of the connections open, with all of them, and after they closed. Each reading waits a settle time and
// takes the median of several samples; nothing forces a GC in the proxy (a Node proxy's RSS then includes
// garbage the young and old generations have not collected yet, which is why the two figures below exist).
// - total: (all - before) / connections: what opening them cost, one-off growth (young generation filling
//   up, code compiled on first use) included.
// - marginal: (all - half) / second-half connections: the slope once the process is warm, closer to what
//   each connection keeps.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../test/helpers/proc.ts';
import { processTree, sampleTree } from './procfs.ts';
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
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Median RSS of the tree over `samples` readings `gapMs` apart, after `settleMs`. */
export async function settledRss(pid: number, settleMs: number, samples = 5, gapMs = 400): Promise<number> {
  await sleep(settleMs);
  const v: number[] = [];
  for (let i = 0; i < samples; i++) {
    if (i > 0) await sleep(gapMs);
    v.push(sampleTree(processTree(pid)).rssBytes);
  }
  v.sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)]!;
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
}

/** Opens `count` idle connections in two halves (two client processes), reads RSS around them, closes them. */
export async function holdIdle(ctx: ScenarioContext, name: string, o: HoldOptions): Promise<HoldFigures> {
  if (o.warmup > 0) {
    const w = await openClients(o.kind, o.port, o.warmup, `${name}-warm`);
    await w.client.stop();
  }
  const first = Math.ceil(o.count / 2);
  const before = await settledRss(o.pid, o.settleMs, o.samples);
  const a = await openClients(o.kind, o.port, first, `${name}-a`);
  let b: Awaited<ReturnType<typeof openClients>> | null = null;
  try {
    const half = await settledRss(o.pid, o.settleMs, o.samples);
    b = await openClients(o.kind, o.port, o.count - first, `${name}-b`);
    const all = await settledRss(o.pid, o.settleMs, o.samples);
    await b.client.stop();
    await a.client.stop();
    const closed = await settledRss(o.pid, o.settleMs * 2, o.samples);
    const f: HoldFigures = {
      name,
      requested: o.count,
      connected: a.connected + b.connected,
      failed: a.failed + b.failed,
      before,
      half,
      all,
      closed,
      halfConnected: a.connected,
    };
    ctx.log(
      `  ${name}: ${fmtInt(f.connected)} idle ${o.kind} connections (${f.failed} failed), RSS ${mb(before)} -> ${mb(half)} -> ${mb(all)} MB, ` +
        `${fmt(totalKb(f), 2)} KB each (marginal ${fmt(marginalKb(f), 2)}), ${mb(closed)} MB after close`,
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

export const HOLD_COLUMNS = ['proxy', 'connections', 'RSS before MB', 'RSS with all MB', 'KB per connection', 'marginal KB (2nd half)', 'RSS after close MB'];

export function holdRow(f: HoldFigures): string[] {
  return [
    f.name,
    `${fmtInt(f.connected)}${f.failed > 0 ? ` (${f.failed} failed)` : ''}`,
    mb(f.before),
    mb(f.all),
    fmt(totalKb(f), 2),
    fmt(marginalKb(f), 2),
    mb(f.closed),
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
  };
}
