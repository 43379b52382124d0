// Metrics across cluster workers (CLI, worker_processes 2): requests served by each worker (the other one
// SIGSTOPped, so the kernel hands every new connection to the running one) add up in the primary's exporter,
// and a worker's public-api answer is the same cluster-wide view.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { admin, baseConfig, get, killAll, ports, served, startCli, writeConfig, type Gw, type Ports } from '../foundation/cli-helpers.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { parseProm, value } from './prom-text.ts';

vi.setConfig({ testTimeout: 60_000 });

let echo: EchoServer;
let p: Ports;
let gw: Gw;
let metricsPort = 0;
let cleanup: () => Promise<void>;

async function workers(): Promise<number[]> {
  const text = await readFile(`/proc/${gw.peer.pid}/task/${gw.peer.pid}/children`, 'utf8').catch(() => '');
  return text.split(/\s+/).filter((s) => s !== '').map(Number);
}

async function only<T>(pid: number, fn: () => Promise<T>): Promise<T> {
  const others = (await workers()).filter((w) => w !== pid);
  for (const w of others) process.kill(w, 'SIGSTOP');
  try {
    return await fn();
  } finally {
    for (const w of others) process.kill(w, 'SIGCONT');
  }
}

beforeAll(async () => {
  echo = await startEcho('A');
  const t = await tempDir('swy-prom-cluster-');
  cleanup = t.cleanup;
  p = await ports();
  metricsPort = await freePort();
  const conf = baseConfig(p);
  conf.switchyard.worker_processes = 2;
  conf.plugin_attr = { prometheus: { export_addr: { ip: '127.0.0.1', port: metricsPort } } };
  gw = await startCli(await writeConfig(t.dir, conf), p.status);
  await waitFor(async () => (await get(`http://127.0.0.1:${p.status}/status/ready`)).status === 200, 30_000, 50);
  expect((await admin(p, 'PUT', '/routes/r1', { uri: '/c/*', upstream: { nodes: { [echo.addr]: 1 } }, plugins: { prometheus: {} } })).status).toBeLessThan(300);
  expect((await admin(p, 'PUT', '/routes/pub', { uri: '/apisix/prometheus/metrics', plugins: { 'public-api': {} } })).status).toBeLessThan(300);
  await waitFor(async () => (await workers()).length === 2, 10_000, 50);
  for (const w of await workers()) await only(w, () => served(`http://127.0.0.1:${p.http}/c/warm`));
});

afterAll(async () => {
  await killAll();
  await echo?.close();
  await cleanup?.();
});

describe('prometheus in a cluster', () => {
  it('sums every worker into the primary exporter', async () => {
    const scrape = async () => parseProm((await get(`http://127.0.0.1:${metricsPort}/apisix/prometheus/metrics`)).body);
    const m0 = await scrape();
    const before = value(m0, 'apisix_http_status', { route: 'r1' });
    const latBefore = value(m0, 'apisix_http_latency_count', { route: 'r1', type: 'request' });
    const [a, b] = await workers();
    await only(a!, async () => {
      for (let i = 0; i < 5; i++) expect((await get(`http://127.0.0.1:${p.http}/c/a${i}`)).status).toBe(200);
    });
    await only(b!, async () => {
      for (let i = 0; i < 7; i++) expect((await get(`http://127.0.0.1:${p.http}/c/b${i}`)).status).toBe(200);
    });
    const m = await scrape();
    expect(value(m, 'apisix_http_status', { route: 'r1', code: '200' }) - before).toBe(12);
    expect(value(m, 'apisix_http_latency_count', { route: 'r1', type: 'request' }) - latBefore).toBe(12);
    // One node_info series, not one per process.
    expect(m.filter((s) => s.name === 'apisix_node_info')).toHaveLength(1);
    expect(value(m, 'apisix_http_requests_total')).toBeGreaterThanOrEqual(12);
  });

  it('public-api is off while the export server runs (APISIX)', async () => {
    expect((await get(`http://127.0.0.1:${p.http}/apisix/prometheus/metrics`)).status).toBe(404);
  });
});
