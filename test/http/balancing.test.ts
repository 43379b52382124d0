// Load balancing through the real gateway (apisix-compat 2 upstream, 10.12): roundrobin weights, chash
// stickiness, least_conn and ewma steering, observed at real upstream servers.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { waitFor } from '../helpers/proc.ts';
import { client } from './client.ts';

let gw: TestGateway;
let nodes: EchoServer[] = [];
let slow: EchoServer;
const http = client();

beforeAll(async () => {
  nodes = await Promise.all(['a', 'b', 'c'].map((n) => startEcho(n)));
  slow = await startEcho('slow', { delayMs: 150 });
  gw = await startTestGateway();
});

afterAll(async () => {
  await http.close();
  await gw?.close();
  await Promise.all([...nodes, slow].map((n) => n?.close()));
});

async function server(path: string, headers: Record<string, string> = {}): Promise<string> {
  const r = await http.call(gw.url + path, { headers });
  expect(r.status).toBe(200);
  return r.headers['x-upstream'] as string;
}

function tally(list: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of list) out[s] = (out[s] ?? 0) + 1;
  return out;
}

describe('balancing through the gateway', () => {
  test('roundrobin weights 1:2:3 are exact over whole cycles on keep-alive', async () => {
    await gw.put('/routes/rr', {
      uri: '/rr/*',
      upstream: { type: 'roundrobin', nodes: { [nodes[0]!.addr]: 1, [nodes[1]!.addr]: 2, [nodes[2]!.addr]: 3 } },
    });
    const seen: string[] = [];
    for (let i = 0; i < 60; i++) seen.push(await server(`/rr/${i}`));
    expect(tally(seen)).toEqual({ a: 10, b: 20, c: 30 });
    // Smooth weighted round robin: every window of 6 holds the exact proportions.
    for (let w = 0; w < 60; w += 6) expect(tally(seen.slice(w, w + 6))).toEqual({ a: 1, b: 2, c: 3 });
  });

  test('chash by arg and by header: sticky per key, spread across keys', async () => {
    const three = { [nodes[0]!.addr]: 1, [nodes[1]!.addr]: 1, [nodes[2]!.addr]: 1 };
    await gw.put('/routes/ch-arg', { uri: '/ch/arg', upstream: { type: 'chash', hash_on: 'vars', key: 'arg_user', nodes: three } });
    await gw.put('/routes/ch-hdr', { uri: '/ch/hdr', upstream: { type: 'chash', hash_on: 'header', key: 'x-user', nodes: three } });
    const byArg = new Map<string, string>();
    const byHdr = new Map<string, string>();
    for (let u = 0; u < 30; u++) {
      byArg.set(`u${u}`, await server(`/ch/arg?user=u${u}`));
      byHdr.set(`u${u}`, await server('/ch/hdr', { 'x-user': `u${u}` }));
    }
    for (let round = 0; round < 3; round++) {
      for (let u = 0; u < 30; u += 3) {
        expect(await server(`/ch/arg?user=u${u}&n=${round}`)).toBe(byArg.get(`u${u}`));
        expect(await server('/ch/hdr', { 'x-user': `u${u}` })).toBe(byHdr.get(`u${u}`));
      }
    }
    expect(new Set(byArg.values()).size).toBe(3);
    expect(new Set(byHdr.values()).size).toBe(3);
  });

  test('least_conn steers new requests away from a node busy with a slow request', async () => {
    // Two routes share one upstream (one balancer): /delay/<ms> is slow at the echo server.
    await gw.put('/upstreams/lc', { type: 'least_conn', nodes: { [nodes[0]!.addr]: 1, [nodes[1]!.addr]: 1 } });
    await gw.put('/routes/lc', { uri: '/lc/*', upstream_id: 'lc' });
    await gw.put('/routes/lc-slow', { uri: '/delay/*', upstream_id: 'lc' });
    const before = nodes.map((n) => n.seen.length);
    const slowReq = http.call(`${gw.url}/delay/2500`);
    // The upstream records the request when it arrives, long before it answers.
    const busy = await waitFor(() => nodes.slice(0, 2).find((n, i) => n.seen.length > before[i]!), 5000, 5);
    const idle = busy === nodes[0] ? 'b' : 'a';
    const quick: string[] = [];
    for (let i = 0; i < 8; i++) quick.push(await server(`/lc/q${i}`));
    expect(quick).toEqual(Array(8).fill(idle));
    expect((await slowReq).status).toBe(200);
  });

  test('ewma prefers a fast node over a slow one', async () => {
    await gw.put('/routes/ewma', { uri: '/ewma/*', upstream: { type: 'ewma', nodes: { [nodes[0]!.addr]: 1, [slow.addr]: 1 } } });
    const seen: string[] = [];
    for (let i = 0; i < 20; i++) seen.push(await server(`/ewma/${i}`));
    const t = tally(seen);
    // Unmeasured nodes score 0, so the slow node gets probed at most a couple of times.
    expect(t.slow ?? 0).toBeLessThanOrEqual(3);
    expect(t.a).toBeGreaterThanOrEqual(17);
  });
});
