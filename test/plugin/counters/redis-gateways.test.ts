// Redis policies across 3 gateway processes (the real CLI, one worker each) sharing one redis-server: a fixed
// number of requests spread over the three, concurrently, lets exactly the limit through.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { tempDir } from '../../helpers/proc.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { admin, baseConfig, get, killAll, ports, served, startCli, writeConfig, type Ports } from '../../foundation/cli-helpers.ts';
import { startRedis, type RedisPeer } from './redis-peers.ts';

vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });

let echo: EchoServer;
let redis: RedisPeer;
let gws: Ports[] = [];
const cleanups: (() => Promise<void>)[] = [];

async function startOne(): Promise<Ports> {
  const { dir, cleanup } = await tempDir('swy-redis-gw-');
  cleanups.push(cleanup);
  const p = await ports();
  await startCli(await writeConfig(dir, baseConfig(p)), p.status);
  return p;
}

beforeAll(async () => {
  [echo, redis] = await Promise.all([startEcho('up'), startRedis()]);
  gws = await Promise.all([startOne(), startOne(), startOne()]);
});

afterAll(async () => {
  await killAll();
  await echo?.close();
  await redis?.stop();
  for (const c of cleanups) await c();
});

/** `total` requests with `x-key: k`, spread round-robin over the gateways, `parallel` at a time. */
async function spread(path: string, total: number, parallel: number): Promise<Map<number, number>> {
  const counts = new Map<number, number>();
  let next = 0;
  const lane = async () => {
    while (next < total) {
      const i = next++;
      const r = await get(`http://127.0.0.1:${gws[i % gws.length]!.http}${path}`, { headers: { 'x-key': 'k' } });
      counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: parallel }, lane));
  return counts;
}

async function routeEverywhere(id: string, uri: string, plugins: Record<string, unknown>): Promise<void> {
  for (const p of gws) {
    expect((await admin(p, 'PUT', `/routes/${id}`, { uri, plugins, upstream: { type: 'roundrobin', nodes: { [echo.addr]: 1 } } })).status).toBeLessThan(300);
  }
  // Probe with a key of its own so the probes never count against `k`.
  for (const p of gws) await served(`http://127.0.0.1:${p.http}${uri}?probe`, 200, 10_000);
}

const redisConf = () => ({ policy: 'redis', redis_host: '127.0.0.1', redis_port: redis.port, key: 'http_x_key' });

describe('Redis policies across 3 gateway processes', () => {
  it('limit-count 100 over 300 requests lets exactly 100 through', async () => {
    await routeEverywhere('c', '/count', { 'limit-count': { count: 100, time_window: 60, rejected_code: 429, ...redisConf() } });
    const counts = await spread('/count', 300, 30);
    expect(Object.fromEntries(counts)).toEqual({ 200: 100, 429: 200 });
  });

  it('limit-req burst 49 (nodelay, a slow rate) over 150 requests lets exactly 50 through', async () => {
    await routeEverywhere('r', '/req', { 'limit-req': { rate: 0.001, burst: 49, nodelay: true, ...redisConf() } });
    const counts = await spread('/req', 150, 30);
    expect(Object.fromEntries(counts)).toEqual({ 200: 50, 503: 100 });
  });
});
