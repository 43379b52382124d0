// Cluster mode (`switchyard start` with 2 workers): checkers run once per gateway node in the primary, so the
// probes a backend sees do not grow with the worker count, and every worker (a replacement one included)
// follows the primary's health state over IPC.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, baseConfig, get, ports, startCli, writeConfig, type Gw, type Ports } from '../foundation/cli-helpers.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { httpBackend, type Backend } from './helpers.ts';

let p: Ports;
let controlPort: number;
let gw: Gw;
let tmp: { dir: string; cleanup(): Promise<void> };
let a: Backend;
let b: Backend & { probeStatus: number };

beforeAll(async () => {
  tmp = await tempDir('swy-health-cluster-');
  p = await ports();
  controlPort = await freePort();
  const conf = baseConfig(p);
  conf.apisix.enable_control = true;
  conf.apisix.control = { ip: '127.0.0.1', port: controlPort };
  conf.switchyard.worker_processes = 2;
  gw = await startCli(await writeConfig(tmp.dir, conf), p.status);
  a = await httpBackend('a');
  b = await httpBackend('b', { probeStatus: 500 });
  await waitFor(async () => (await get(`http://127.0.0.1:${p.status}/status/ready`)).status === 200, 30_000, 100);
}, 45_000);

afterAll(async () => {
  await gw?.peer.stop();
  await a?.stop();
  await b?.stop();
  await tmp?.cleanup();
});

function workerPids(): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(gw.peer.pid)], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map(Number);
  } catch {
    return [];
  }
}

async function statusOf(port: number): Promise<string | undefined> {
  const r = await get(`http://127.0.0.1:${controlPort}/v1/healthcheck/upstreams/1`);
  if (r.status !== 200) return undefined;
  const nodes = JSON.parse(r.body).nodes as { port: number; status: string }[];
  return Array.isArray(nodes) ? nodes.find((n) => n.port === port)?.status : undefined;
}

async function allServedBy(name: string, n: number): Promise<boolean> {
  for (let i = 0; i < n; i++) {
    const r = await get(`http://127.0.0.1:${p.http}/c/${i}`);
    if (r.status !== 200 || r.headers['x-upstream'] !== name) return false;
  }
  return true;
}

describe('health checks in cluster mode', () => {
  it('one checker per upstream for the gateway node; workers share its state', async () => {
    const active = {
      http_path: '/health',
      timeout: 1,
      healthy: { interval: 1, successes: 1 },
      unhealthy: { interval: 1, http_failures: 1, tcp_failures: 1 },
    };
    expect((await admin(p, 'PUT', '/upstreams/1', { nodes: { [`127.0.0.1:${a.port}`]: 1, [`127.0.0.1:${b.port}`]: 1 }, checks: { active } })).status).toBeLessThan(300);
    expect((await admin(p, 'PUT', '/routes/1', { uri: '/c/*', upstream_id: '1' })).status).toBeLessThan(300);

    await waitFor(async () => (await statusOf(b.port)) === 'unhealthy' && (await statusOf(a.port)) === 'healthy', 10_000, 50);
    // b answers real requests fine; only its probe path fails. Workers run no checker of their own, so b
    // getting no traffic means both workers took the primary's state.
    await waitFor(() => allServedBy('a', 1), 10_000, 50);
    expect(await allServedBy('a', 20)).toBe(true);
    expect(b.hits).toBe(0);

    // Probe traffic: healthy and unhealthy rounds run every 1 s, once per node, whatever the worker count.
    // Load can only delay rounds, so the count over a window has an upper bound of window/interval + 1 per
    // node; one checker per worker would double it.
    const before = a.probes + b.probes;
    await new Promise((r) => setTimeout(r, 3000));
    const probes = a.probes + b.probes - before;
    expect(probes).toBeGreaterThanOrEqual(2);
    expect(probes).toBeLessThanOrEqual(2 * (3 + 1));

    // A replacement worker asks the primary for the full state when it starts.
    const pids = workerPids();
    expect(pids).toHaveLength(2);
    process.kill(pids[0]!, 'SIGKILL');
    await waitFor(() => {
      const now = workerPids();
      return now.length === 2 && !now.includes(pids[0]!);
    }, 20_000, 50);
    await waitFor(async () => (await get(`http://127.0.0.1:${p.status}/status/ready`)).status === 200, 30_000, 100);
    expect(await allServedBy('a', 20)).toBe(true);
    expect(b.hits).toBe(0);

    // Recovery reaches the workers too.
    b.probeStatus = 200;
    await waitFor(async () => (await statusOf(b.port)) === 'healthy', 10_000, 50);
    await waitFor(async () => !(await allServedBy('a', 4)), 10_000, 50);
    expect(b.hits).toBeGreaterThan(0);
  }, 60_000);
});
