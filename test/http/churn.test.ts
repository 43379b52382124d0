// Config churn under load: the route set is rewritten 100 times through the Admin API while keep-alive
// clients keep requesting; every request must succeed (atomic runtime swaps, pools drained gracefully).
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { client } from './client.ts';

let gw: TestGateway;
let a: EchoServer;
let b: EchoServer;
const cl = client();

beforeAll(async () => {
  [a, b] = await Promise.all([startEcho('a'), startEcho('b')]);
  gw = await startTestGateway();
  await gw.put('/routes/main', { uri: '/main/*', upstream: { nodes: { [a.addr]: 1 } } });
});

afterAll(async () => {
  await cl.close();
  await gw?.close();
  await Promise.all([a?.close(), b?.close()]);
});

/** Bounds on the load: requests and time. */
const MAX = 20_000;

function mainRoute(i: number): Record<string, unknown> {
  const nodes = i % 3 === 0 ? { [a.addr]: 1 } : i % 3 === 1 ? { [b.addr]: 1 } : { [a.addr]: 1, [b.addr]: 2 };
  const plugins: Record<string, unknown> =
    i % 2 === 0
      ? { 'response-rewrite': { headers: { set: { 'x-rev': String(i) } } } }
      : { 'proxy-rewrite': { headers: { set: { 'x-churn': String(i) } } } };
  return { uri: '/main/*', upstream: { type: i % 4 === 3 ? 'least_conn' : 'roundrobin', nodes }, plugins };
}

describe('config churn', () => {
  test('100 route-set rewrites under keep-alive load (concurrency 8): zero errors, zero non-200s', async () => {
    let stop = false;
    const deadline = Date.now() + 20_000;
    const statuses = new Map<number, number>();
    const errors: string[] = [];
    let sent = 0;
    const worker = async () => {
      while (!stop && sent < MAX && Date.now() < deadline) {
        sent++;
        try {
          const r = await cl.call(`${gw.url}/main/${sent}`);
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          // A short pause per request leaves CPU for the Admin API on a 2-core machine.
          await new Promise((res) => setImmediate(res));
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
    };
    let swapsUnderLoad = 0;
    const onSwap = () => {
      if (!stop) swapsUnderLoad++;
    };
    gw.gw.manager!.on('swap', onSwap);
    const workers = Array.from({ length: 8 }, worker);

    // 100 writes: the loaded route's upstream and plugins change on even steps; other routes come and go on
    // odd ones.
    for (let i = 0; i < 100; i++) {
      const w =
        i % 2 === 0
          ? await gw.admin('PUT', '/routes/main', mainRoute(i))
          : i % 4 === 1
            ? await gw.admin('PUT', `/routes/side-${i}`, { uri: `/side/${i}`, upstream: { nodes: { [b.addr]: 1 } } })
            : await gw.admin('DELETE', `/routes/side-${i - 2}`);
      expect(w.status).toBeLessThan(300);
      if (i % 10 === 9) await gw.synced();
    }
    await gw.synced();
    // Keep the load on a little after the last swap.
    const tail = sent + 50;
    while (sent < tail && sent < MAX && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    stop = true;
    await Promise.all(workers);
    gw.gw.manager!.off('swap', onSwap);

    expect(errors).toEqual([]);
    expect([...statuses.keys()]).toEqual([200]);
    expect(statuses.get(200)).toBeGreaterThan(100);
    // Swaps may coalesce several writes, but plenty of them happened while the clients were busy.
    expect(swapsUnderLoad).toBeGreaterThanOrEqual(10);
    // The last config is the one served.
    const last = await cl.call(`${gw.url}/main/last`);
    expect(last.headers['x-churn']).toBeUndefined();
    expect(last.json().headers['x-churn']).toBeUndefined();
    expect(last.headers['x-rev']).toBe('98');
  });
});
