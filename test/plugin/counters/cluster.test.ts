// Node-wide local counters through the real CLI with 2 workers, each driven alone in turn (workers.ts): the
// limits hold for the node as a whole. limit-count 10 lets exactly 10 through; limit-req's bucket and
// limit-conn's slots are shared too.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { get, killAll } from '../../foundation/cli-helpers.ts';
import { waitFor } from '../../helpers/proc.ts';
import { only, putRoute, sequential, startNode, workerPids, type Node } from './workers.ts';

vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });

let echo: EchoServer;
let node: Node;

beforeAll(async () => {
  [echo, node] = await Promise.all([startEcho('up'), startNode(2)]);
});

afterAll(async () => {
  await killAll();
  await echo?.close();
  await node?.cleanup();
});

const upstream = () => ({ type: 'roundrobin', nodes: { [echo.addr]: 1 } });
const k = { headers: { 'x-key': 'k' } };

describe('local policy across 2 workers of one node', () => {
  it('limit-count 10 lets exactly 10 through', async () => {
    const conf = { count: 10, time_window: 60, key: 'http_x_key', rejected_code: 429 };
    await putRoute(node, 'c', { uri: '/count', plugins: { 'limit-count': conf }, upstream: upstream() }, '/count');
    const [a, b] = await workerPids(node);
    const url = `http://127.0.0.1:${node.p.http}/count`;
    const onA = await only(node, a!, () => sequential(url, 6));
    const onB = await only(node, b!, () => sequential(url, 6));
    expect(onA.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(onA.map((r) => r.remaining)).toEqual(['9', '8', '7', '6', '5', '4']);
    // Worker B continues the same count.
    expect(onB.map((r) => r.status)).toEqual([200, 200, 200, 200, 429, 429]);
    expect(onB[0]!.remaining).toBe('3');
    // Both workers at once, concurrently: nothing more gets through.
    const burst = await Promise.all(Array.from({ length: 20 }, () => get(url, k)));
    expect(burst.filter((r) => r.status === 200)).toHaveLength(0);
  });

  it('limit-req shares one bucket', async () => {
    const conf = { rate: 0.01, burst: 2, nodelay: true, key: 'http_x_key' };
    await putRoute(node, 'r', { uri: '/req', plugins: { 'limit-req': conf }, upstream: upstream() }, '/req');
    const [a, b] = await workerPids(node);
    const url = `http://127.0.0.1:${node.p.http}/req`;
    const statuses: number[] = [];
    for (const pid of [a!, b!, a!, b!]) statuses.push((await only(node, pid, () => get(url, k))).status);
    expect(statuses).toEqual([200, 200, 200, 503]);
  });

  it('limit-conn counts in-flight requests', async () => {
    const conf = { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'http_x_key' };
    await putRoute(node, 'n', { uri: '/delay/*', plugins: { 'limit-conn': conf }, upstream: upstream() }, '/delay/1');
    const [a, b] = await workerPids(node);
    const base = `http://127.0.0.1:${node.p.http}`;
    // A slow request held by worker A (sent while B is stopped), then B asks while A still holds the slot.
    let slow: Promise<{ status: number }> = Promise.resolve({ status: 0 });
    await only(node, a!, async () => {
      slow = get(`${base}/delay/1500?held=1`, k);
      // Held once the upstream has it: A took the slot before proxying (a fixed sleep raced a loaded CI machine).
      await waitFor(() => echo.seen.some((r) => r.url === '/delay/1500?held=1'), 10_000, 10);
    });
    expect((await only(node, b!, () => get(`${base}/delay/1`, k))).status).toBe(503);
    expect((await slow).status).toBe(200);
    await expect.poll(async () => (await only(node, b!, () => get(`${base}/delay/1`, k))).status, { timeout: 5000, interval: 100 }).toBe(200);
  });

  it('limit-conn slots of a worker that dies are released by the primary', async () => {
    const [a, b] = await workerPids(node);
    const base = `http://127.0.0.1:${node.p.http}`;
    let slow: Promise<unknown> = Promise.resolve();
    await only(node, a!, async () => {
      slow = get(`${base}/delay/5000?held=2`, k).catch(() => undefined);
      await waitFor(() => echo.seen.some((r) => r.url === '/delay/5000?held=2'), 10_000, 10);
    });
    expect((await only(node, b!, () => get(`${base}/delay/1`, k))).status).toBe(503);
    process.kill(a!, 'SIGKILL');
    await slow;
    await expect.poll(async () => (await get(`${base}/delay/1`, k)).status, { timeout: 5000, interval: 100 }).toBe(200);
    // Let the replacement the primary starts come up before the node is torn down.
    await expect.poll(async () => (await workerPids(node)).length, { timeout: 20_000, interval: 200 }).toBe(2);
  });
});
