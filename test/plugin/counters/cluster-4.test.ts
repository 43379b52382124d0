// Node-wide limit-count with 4 workers through the real CLI (slow: 4 cold worker starts on a 2-core machine).
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { get, killAll } from '../../foundation/cli-helpers.ts';
import { only, putRoute, sequential, startNode, workerPids, type Node } from './workers.ts';

vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });

let echo: EchoServer;
let node: Node;

beforeAll(async () => {
  [echo, node] = await Promise.all([startEcho('up'), startNode(4)]);
});

afterAll(async () => {
  await killAll();
  await echo?.close();
  await node?.cleanup();
});

describe('local policy across 4 workers of one node', () => {
  it('limit-count 10 lets exactly 10 through', async () => {
    const pids = await workerPids(node);
    expect(pids).toHaveLength(4);
    const conf = { count: 10, time_window: 60, key: 'http_x_key' };
    await putRoute(node, 'c4', { uri: '/count4', plugins: { 'limit-count': conf }, upstream: { type: 'roundrobin', nodes: { [echo.addr]: 1 } } }, '/count4');
    const url = `http://127.0.0.1:${node.p.http}/count4`;
    const passed: number[] = [];
    for (const pid of pids) passed.push((await only(node, pid, () => sequential(url, 3))).filter((r) => r.status === 200).length);
    expect(passed).toEqual([3, 3, 3, 1]);
    const burst = await Promise.all(Array.from({ length: 20 }, () => get(url, { headers: { 'x-key': 'k' } })));
    expect(burst.filter((r) => r.status === 200)).toHaveLength(0);
  });
});
