// Retries, timeouts and upstream status reporting through the real gateway (apisix-compat 2 upstream,
// 10.12; APISIX t/node/upstream-status-5xx.t).
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { client, curl } from './client.ts';

let gw: TestGateway;
let live: EchoServer;
let slowA: EchoServer;
let slowB: EchoServer;
let dead1: string;
let dead2: string;
const http = client();

beforeAll(async () => {
  live = await startEcho('live');
  slowA = await startEcho('slow-a', { delayMs: 1500 });
  slowB = await startEcho('slow-b', { delayMs: 1500 });
  // Free ports nobody listens on: connections are refused at once.
  dead1 = `127.0.0.1:${await freePort()}`;
  dead2 = `127.0.0.1:${await freePort()}`;
  gw = await startTestGateway();
});

afterAll(async () => {
  await http.close();
  await gw?.close();
  await Promise.all([live, slowA, slowB].map((s) => s?.close()));
});

describe('retries and timeouts', () => {
  test('default retries (nodes - 1) skip a dead node: every request succeeds', async () => {
    await gw.put('/routes/r1', { uri: '/r1/*', upstream: { nodes: { [dead1]: 1, [live.addr]: 1 } } });
    const statuses: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await http.call(`${gw.url}/r1/${i}`);
      expect(r.status).toBe(200);
      expect(r.json().server).toBe('live');
      statuses.push(String(r.headers['x-apisix-upstream-status'] ?? ''));
    }
    // A retried success is not a 5xx: no status header (APISIX shows "502, 200" only in its logs).
    expect(new Set(statuses)).toEqual(new Set(['']));
  });

  test('retries: 0 gives 502 when the dead node is picked; all dead gives 502 with every attempt listed', async () => {
    await gw.put('/routes/r2', { uri: '/r2/*', upstream: { retries: 0, nodes: { [dead1]: 1, [live.addr]: 1 } } });
    const codes: number[] = [];
    for (let i = 0; i < 10; i++) codes.push((await http.call(`${gw.url}/r2/${i}`)).status);
    // Equal-weight round robin alternates: half the requests meet the dead node.
    expect(codes.filter((c) => c === 502)).toHaveLength(5);
    expect(codes.filter((c) => c === 200)).toHaveLength(5);

    await gw.put('/routes/r3', { uri: '/r3', upstream: { retries: 2, nodes: { [dead1]: 1, [dead2]: 1, '127.0.0.1:1': 1 } } });
    await gw.put('/routes/r4', { uri: '/r4', upstream: { nodes: {} } });
    expect((await http.call(`${gw.url}/r4`)).status).toBe(502);

    const c = await curl([`${gw.url}/r3`]);
    expect(c.status).toBe(502);
    expect(c.headers['x-apisix-upstream-status']).toBe('502, 502, 502');
    expect(c.body).toContain('502 Bad Gateway');
  });

  test('node priorities: the higher priority group serves; a dead one falls back to the next group', async () => {
    await gw.put('/routes/prio', {
      uri: '/prio/*',
      upstream: {
        nodes: [
          { host: '127.0.0.1', port: live.port, weight: 1, priority: 10 },
          { host: '127.0.0.1', port: slowA.port, weight: 1, priority: 0 },
        ],
      },
    });
    for (let i = 0; i < 5; i++) expect((await http.call(`${gw.url}/prio/${i}`)).json().server).toBe('live');
    const [host, port] = dead1.split(':');
    await gw.put('/routes/prio', {
      uri: '/prio/*',
      upstream: {
        nodes: [
          { host, port: Number(port), weight: 1, priority: 10 },
          { host: '127.0.0.1', port: live.port, weight: 1, priority: 0 },
        ],
      },
    });
    for (let i = 0; i < 5; i++) {
      const r = await http.call(`${gw.url}/prio/${i}`);
      expect(r.status).toBe(200);
      expect(r.json().server).toBe('live');
    }
  });

  test('504 on a slow node when timeout.read is small; the route timeout overrides the upstream one', async () => {
    await gw.put('/routes/t1', { uri: '/t1', upstream: { timeout: { connect: 2, send: 2, read: 0.3 }, nodes: { [slowA.addr]: 1 } } });
    const r = await http.call(`${gw.url}/t1`);
    expect(r.status).toBe(504);
    expect(r.headers['x-apisix-upstream-status']).toBe('504');
    expect(r.text).toContain('504 Gateway Time-out');

    // Upstream would wait long enough; the route's own timeout cuts it short.
    await gw.put('/routes/t2', {
      uri: '/t2',
      timeout: { connect: 2, send: 2, read: 0.3 },
      upstream: { timeout: { connect: 10, send: 10, read: 10 }, nodes: { [slowA.addr]: 1 } },
    });
    expect((await http.call(`${gw.url}/t2`)).status).toBe(504);
    // And the other way round: a generous route timeout over a tight upstream one.
    await gw.put('/routes/t3', {
      uri: '/t3',
      timeout: { connect: 10, send: 10, read: 10 },
      upstream: { timeout: { connect: 2, send: 2, read: 0.3 }, nodes: { [slowA.addr]: 1 } },
    });
    expect((await http.call(`${gw.url}/t3`)).status).toBe(200);
  });

  test('retry_timeout stops retrying once the budget is spent', async () => {
    const nodes = { [slowA.addr]: 1, [slowB.addr]: 1 };
    const timeout = { connect: 2, send: 2, read: 0.3 };
    await gw.put('/routes/rt1', { uri: '/rt1', upstream: { timeout, retries: 1, nodes } });
    await gw.put('/routes/rt2', { uri: '/rt2', upstream: { timeout, retries: 1, retry_timeout: 0.1, nodes } });
    const seen = () => slowA.seen.length + slowB.seen.length;

    let before = seen();
    const a = await http.call(`${gw.url}/rt1`);
    expect(a.status).toBe(504);
    expect(a.headers['x-apisix-upstream-status']).toBe('504, 504');
    expect(seen() - before).toBe(2);

    before = seen();
    const b = await http.call(`${gw.url}/rt2`);
    expect(b.status).toBe(504);
    expect(b.headers['x-apisix-upstream-status']).toBe('504');
    expect(seen() - before).toBe(1);
  });

  test('X-APISIX-Upstream-Status on upstream 5xx only', async () => {
    await gw.put('/routes/st', { uri: '/status/*', upstream: { nodes: { [live.addr]: 1 } } });
    const r500 = await http.call(`${gw.url}/status/503`);
    expect(r500.status).toBe(503);
    expect(r500.headers['x-apisix-upstream-status']).toBe('503');
    expect(r500.json().server).toBe('live');
    const r404 = await http.call(`${gw.url}/status/404`);
    expect(r404.status).toBe(404);
    expect(r404.headers['x-apisix-upstream-status']).toBeUndefined();
    const r200 = await http.call(`${gw.url}/status/200`);
    expect(r200.headers['x-apisix-upstream-status']).toBeUndefined();
  });
});
