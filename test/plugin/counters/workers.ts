// A real multi-worker gateway (the CLI with worker_processes N) for the node-wide counter tests, and a way to
// drive one worker alone: the others are SIGSTOPped, so every new connection lands on the chosen one.
import { readFile } from 'node:fs/promises';
import { expect } from 'vitest';
import { tempDir, waitFor } from '../../helpers/proc.ts';
import { admin, baseConfig, get, ports, startCli, writeConfig, type Gw, type Ports } from '../../foundation/cli-helpers.ts';

export interface Node {
  readonly gw: Gw;
  readonly p: Ports;
  readonly cleanup: () => Promise<void>;
}

export async function startNode(workers: number): Promise<Node> {
  const { dir, cleanup } = await tempDir('swy-counters-');
  const p = await ports();
  const conf = baseConfig(p);
  conf.switchyard.worker_processes = workers;
  const gw = await startCli(await writeConfig(dir, conf), p.status);
  await waitFor(async () => (await get(`http://127.0.0.1:${p.status}/status/ready`)).status === 200, 40_000, 50);
  return { gw, p, cleanup };
}

export async function workerPids(n: Node): Promise<number[]> {
  const text = await readFile(`/proc/${n.gw.peer.pid}/task/${n.gw.peer.pid}/children`, 'utf8').catch(() => '');
  return text.split(/\s+/).filter((s) => s !== '').map(Number);
}

/** Runs `fn` with every worker but `pid` stopped. */
export async function only<T>(n: Node, pid: number, fn: () => Promise<T>): Promise<T> {
  const others = (await workerPids(n)).filter((w) => w !== pid);
  for (const w of others) process.kill(w, 'SIGSTOP');
  try {
    return await fn();
  } finally {
    for (const w of others) process.kill(w, 'SIGCONT');
  }
}

/**
 * PUTs a route and waits until every worker serves it, probing `path` with a fresh random `x-key` header each
 * time so the probes never count against the key the test uses.
 */
export async function putRoute(n: Node, id: string, body: Record<string, unknown>, path: string): Promise<void> {
  expect((await admin(n.p, 'PUT', `/routes/${id}`, body)).status).toBeLessThan(300);
  for (const pid of await workerPids(n)) {
    await only(n, pid, () =>
      waitFor(async () => (await get(`http://127.0.0.1:${n.p.http}${path}`, { headers: { 'x-key': `probe-${Math.random()}` } })).status === 200, 20_000, 50),
    );
  }
}

/** `count` sequential requests on fresh connections, each with `x-key: k`. */
export async function sequential(url: string, count: number): Promise<{ status: number; remaining: string | undefined }[]> {
  const out = [];
  for (let i = 0; i < count; i++) {
    const r = await get(url, { headers: { 'x-key': 'k' } });
    out.push({ status: r.status, remaining: r.headers['x-ratelimit-remaining'] as string | undefined });
  }
  return out;
}
