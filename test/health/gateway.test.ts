// Health checks through a running gateway (single process): backends killed and restarted, passive ejection
// from real 5xx answers, all-unhealthy fallback, and the control API.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/proc.ts';
import { get, httpBackend, type Backend } from './helpers.ts';

let gw: TestGateway;
let control: string;
const backends: Backend[] = [];

beforeAll(async () => {
  const port = await freePort();
  gw = await startTestGateway({ config: { apisix: { enable_control: true, control: { ip: '127.0.0.1', port } } } });
  control = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await gw?.close();
});

afterEach(async () => {
  for (const b of backends.splice(0)) await b.stop();
});

async function backend(name: string, opts?: Parameters<typeof httpBackend>[1]) {
  const b = await httpBackend(name, opts);
  backends.push(b);
  return b;
}

async function nodeStatus(key: string, port: number): Promise<string | undefined> {
  const res = await fetch(`${control}/v1/healthcheck/${key}`);
  if (res.status !== 200) return undefined;
  const body = (await res.json()) as { nodes: { port: number; status: string }[] | Record<string, never> };
  return Array.isArray(body.nodes) ? body.nodes.find((n) => n.port === port)?.status : undefined;
}

const active = {
  type: 'http',
  http_path: '/health',
  timeout: 1,
  healthy: { interval: 1, successes: 1 },
  unhealthy: { interval: 1, http_failures: 1, tcp_failures: 1, timeouts: 1 },
};

describe('active checks through the gateway', () => {
  it('traffic leaves a killed node and comes back after it recovers', async () => {
    const a = await backend('a');
    const b = await backend('b');
    await gw.put('/upstreams/act', { retries: 0, nodes: { [`127.0.0.1:${a.port}`]: 1, [`127.0.0.1:${b.port}`]: 1 }, checks: { active } });
    await gw.put('/routes/act', { uri: '/act/*', upstream_id: 'act' });
    // Checkers start with the config: both nodes are probed before any request.
    await waitFor(() => a.probes > 0 && b.probes > 0, 5000, 20);
    expect(a.hits + b.hits).toBe(0);

    await b.stop();
    // interval x tcp_failures = 1 s, plus the probe timeout and slack for a loaded machine.
    await waitFor(async () => (await nodeStatus('upstreams/act', b.port)) === 'unhealthy', 6000, 50);
    for (let i = 0; i < 20; i++) {
      const r = await get(`${gw.url}/act/${i}`);
      expect(r.status).toBe(200);
      expect(r.upstream).toBe('a');
    }

    await b.start();
    await waitFor(async () => (await nodeStatus('upstreams/act', b.port)) === 'healthy', 6000, 50);
    const served = new Set<string>();
    for (let i = 0; i < 10; i++) served.add((await get(`${gw.url}/act/${i}`)).upstream);
    expect([...served].sort()).toEqual(['a', 'b']);
  });

  it('uses every node when all are unhealthy', async () => {
    const a = await backend('a', { probeStatus: 500 });
    const b = await backend('b', { probeStatus: 500 });
    await gw.put('/upstreams/all', { nodes: { [`127.0.0.1:${a.port}`]: 1, [`127.0.0.1:${b.port}`]: 1 }, checks: { active } });
    await gw.put('/routes/all', { uri: '/all/*', upstream_id: 'all' });
    await waitFor(async () => (await nodeStatus('upstreams/all', a.port)) === 'unhealthy', 6000, 50);
    await waitFor(async () => (await nodeStatus('upstreams/all', b.port)) === 'unhealthy', 6000, 50);
    const served = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const r = await get(`${gw.url}/all/${i}`);
      expect(r.status).toBe(200);
      served.add(r.upstream);
    }
    expect([...served].sort()).toEqual(['a', 'b']);
  });
});

describe('passive checks through the gateway', () => {
  it('passive-only checks eject a node answering 5xx', async () => {
    const a = await backend('a');
    const bad = await backend('bad', { status: 500 });
    await gw.put('/routes/pas', {
      uri: '/pas/*',
      upstream: {
        retries: 0,
        nodes: { [`127.0.0.1:${a.port}`]: 1, [`127.0.0.1:${bad.port}`]: 1 },
        checks: { passive: { unhealthy: { http_statuses: [500], http_failures: 2 } } },
      },
    });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await get(`${gw.url}/pas/${i}`)).status);
    expect(statuses.filter((s) => s === 500)).toHaveLength(2);
    expect(await nodeStatus('routes/pas', bad.port)).toBe('unhealthy');
    for (let i = 0; i < 20; i++) {
      const r = await get(`${gw.url}/pas/${i}`);
      expect(r.status).toBe(200);
      expect(r.upstream).toBe('a');
    }
    expect(bad.hits).toBe(2);
    expect(bad.probes).toBe(0);
  });
});

describe('control API', () => {
  it('lists checkers in APISIX shape', async () => {
    const a = await backend('a');
    await gw.put('/upstreams/ctl', { nodes: { [`127.0.0.1:${a.port}`]: 1 }, checks: { active } });
    await waitFor(async () => (await nodeStatus('upstreams/ctl', a.port)) === 'healthy', 5000, 50);
    const list = (await (await fetch(`${control}/v1/healthcheck`)).json()) as { name: string; type: string; nodes: unknown }[];
    const mine = list.find((c) => c.name === '/apisix/upstreams/ctl');
    expect(mine).toEqual({
      name: '/apisix/upstreams/ctl',
      type: 'http',
      nodes: [
        {
          ip: '127.0.0.1',
          port: a.port,
          hostname: '127.0.0.1',
          status: 'healthy',
          counter: { success: 0, http_failure: 0, tcp_failure: 0, timeout_failure: 0 },
        },
      ],
    });
    expect((await fetch(`${control}/v1/healthcheck/upstreams/nope`)).status).toBe(404);
    expect((await fetch(`${control}/v1/healthcheck/nope/1`)).status).toBe(404);
    expect((await fetch(`${control}/v1/healthcheck`, { method: 'POST' })).status).toBe(405);
  });
});
