// hmac-auth reject_replays through the real CLI with 2 workers: a signature accepted by one worker is refused
// by the other (seen signatures are node-wide, in the primary's counters), each worker driven alone in turn.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { admin, get, killAll } from '../../foundation/cli-helpers.ts';
import { waitFor } from '../../helpers/proc.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { only, startNode, workerPids, type Node } from '../counters/workers.ts';
import { signedHeaders } from './hmac-auth-sign.ts';

// A 2-worker CLI start took 55 s of a 60 s budget at load average 20 on this 2-core machine.
vi.setConfig({ testTimeout: 60_000, hookTimeout: 120_000 });

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

describe('hmac-auth reject_replays across 2 workers of one node', () => {
  it('a signed request accepted by one worker is a replay for the other', async () => {
    const jack = { keyId: 'jack-key', secret: 'jack-secret' };
    expect((await admin(node.p, 'PUT', '/consumers/jack', { username: 'jack', plugins: { 'hmac-auth': { key_id: 'jack-key', secret_key: 'jack-secret' } } })).status).toBeLessThan(300);
    const upstream = { type: 'roundrobin', nodes: { [echo.addr]: 1 } };
    expect((await admin(node.p, 'PUT', '/routes/h', { uri: '/h/*', plugins: { 'hmac-auth': { reject_replays: true } }, upstream })).status).toBeLessThan(300);
    const base = `http://127.0.0.1:${node.p.http}`;
    const [a, b] = await workerPids(node);
    // Each worker serves the route and knows the consumer once a freshly signed request passes there.
    for (const pid of [a!, b!]) {
      await only(node, pid, () =>
        waitFor(async () => (await get(`${base}/h/probe`, { headers: signedHeaders({ ...jack, target: '/h/probe' }) })).status === 200, 20_000, 50),
      );
    }
    const h = signedHeaders({ ...jack, target: '/h/x' });
    const onA = await only(node, a!, () => get(`${base}/h/x`, { headers: h }));
    expect(onA.status).toBe(200);
    const onB = await only(node, b!, () => get(`${base}/h/x`, { headers: h }));
    expect(onB.status).toBe(401);
    expect(JSON.parse(onB.body)).toEqual({ message: "client request can't be validated" });
    expect(onB.headers['www-authenticate']).toBe('hmac realm="hmac"');
    expect((await only(node, a!, () => get(`${base}/h/x`, { headers: h }))).status).toBe(401);
  });
});
