// Regressions: plugins a consumer contributes count per route and consumer (APISIX
// t/plugin/limit-count-consumer-isolation.t); upstream_id wins over an inline upstream (APISIX); a consumer's
// labels.custom_id reaches the upstream as X-Consumer-Custom-ID.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';

let gw: TestGateway;
let upA: http.Server;
let upB: http.Server;
const seen: Record<string, string | undefined>[] = [];

async function serve(name: string): Promise<http.Server> {
  const s = http.createServer((req, res) => {
    seen.push({ up: name, custom: req.headers['x-consumer-custom-id'] as string | undefined });
    res.end(name);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return s;
}
const addr = (s: http.Server) => `127.0.0.1:${(s.address() as AddressInfo).port}`;

beforeAll(async () => {
  upA = await serve('A');
  upB = await serve('B');
  gw = await startTestGateway();
  const limit = { 'limit-count': { count: 1, time_window: 60, rejected_code: 429 } };
  await gw.put('/consumers/jack', { username: 'jack', labels: { custom_id: 'c-jack' }, plugins: { 'key-auth': { key: 'jack-key' }, ...limit } });
  await gw.put('/consumers/rose', { username: 'rose', plugins: { 'key-auth': { key: 'rose-key' }, ...limit } });
  await gw.put('/upstreams/b', { type: 'roundrobin', nodes: { [addr(upB)]: 1 } });
  await gw.put('/routes/r', { uri: '/r', plugins: { 'key-auth': {} }, upstream: { nodes: { [addr(upA)]: 1 } } });
  await gw.put('/routes/both', { uri: '/both', upstream_id: 'b', upstream: { nodes: { [addr(upA)]: 1 } } });
});

afterAll(async () => {
  await gw?.close();
  await new Promise((r) => upA?.close(r));
  await new Promise((r) => upB?.close(r));
});

const get = async (p: string, key?: string) => (await fetch(`${gw.url}${p}`, { headers: key ? { apikey: key } : {} })).status;

it('two consumers with identical limit-count confs do not share a counter', async () => {
  expect(await get('/r', 'jack-key')).toBe(200);
  expect(await get('/r', 'rose-key')).toBe(200);
  expect(await get('/r', 'jack-key')).toBe(429);
  expect(await get('/r', 'rose-key')).toBe(429);
});

it('the consumer custom_id label reaches the upstream', () => {
  expect(seen.find((s) => s.custom === 'c-jack')).toBeDefined();
});

it('upstream_id wins over an inline upstream', async () => {
  const r = await fetch(`${gw.url}/both`);
  expect(await r.text()).toBe('B');
});
