import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { limitCountPlugin as def } from '../../../src/plugin/builtin/limit-count.ts';
import { LocalCounterStore } from '../../../src/plugin/counters/local.ts';
import { closeRedisCounters, redisConnectionCount } from '../../../src/plugin/counters/redis.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { freePort } from '../../helpers/ports.ts';
import { startPeer, waitFor, type Peer } from '../../helpers/proc.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { confError } from '../helpers.ts';

async function startRedis(): Promise<{ peer: Peer; port: number }> {
  const port = await freePort();
  const peer = startPeer('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  const probe = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  await waitFor(async () => {
    try {
      if (probe.status !== 'ready') await probe.connect();
      return (await probe.ping()) === 'PONG';
    } catch {
      probe.disconnect();
      return false;
    }
  }, 10_000, 50);
  probe.disconnect();
  return { peer, port };
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: string }> {
  const r = await fetch(url, { headers });
  return { status: r.status, headers: r.headers, body: await r.text() };
}

describe('limit-count', () => {
  let gw: TestGateway;
  let gw2: TestGateway;
  let up: EchoServer;
  let redis: { peer: Peer; port: number };

  beforeAll(async () => {
    [gw, gw2, up, redis] = await Promise.all([startTestGateway(), startTestGateway(), startEcho('a'), startRedis()]);
  });
  afterAll(async () => {
    await gw?.close();
    await gw2?.close();
    await up?.close();
    closeRedisCounters();
    await redis?.peer.stop();
  });

  const upstream = () => ({ nodes: { [up.addr]: 1 } });

  it('validates like APISIX', () => {
    expect(confError(def, { count: 0, time_window: 1 })).not.toBeNull();
    expect(confError(def, { count: 1 })).not.toBeNull();
    expect(confError(def, { count: 1, time_window: 1, key_type: 'other' })).not.toBeNull();
    expect(confError(def, { count: 1, time_window: 1, policy: 'redis' })).toMatch(/then clause did not match/);
    expect(confError(def, { count: 1, time_window: 1, policy: 'redis-cluster' })).toMatch(/not supported/);
    expect(confError(def, { count: 1, time_window: 1, rejected_code: 600 })).not.toBeNull();
    expect(confError(def, { count: 1, time_window: 1, window_type: 'sliding' })).toBeNull();
  });

  it('counts per key, sets X-RateLimit headers and rejects with 503 (error page or rejected_msg)', async () => {
    await gw.put('/routes/1', { uri: '/lc', plugins: { 'limit-count': { count: 2, time_window: 60 } }, upstream: upstream() });
    await gw.put('/routes/2', {
      uri: '/lc-msg',
      plugins: { 'limit-count': { count: 1, time_window: 60, key: 'http_x_user', rejected_code: 429, rejected_msg: 'slow down' } },
      upstream: upstream(),
    });
    let r = await get(`${gw.url}/lc`);
    expect(r.status).toBe(200);
    expect(r.headers.get('x-ratelimit-limit')).toBe('2');
    expect(r.headers.get('x-ratelimit-remaining')).toBe('1');
    const reset = Number(r.headers.get('x-ratelimit-reset'));
    expect(reset).toBeGreaterThan(0);
    expect(reset).toBeLessThanOrEqual(60);
    r = await get(`${gw.url}/lc`);
    expect(r.headers.get('x-ratelimit-remaining')).toBe('0');
    r = await get(`${gw.url}/lc`);
    expect(r.status).toBe(503);
    expect(r.body).toContain('503 Service Temporarily Unavailable');
    expect(r.headers.get('x-ratelimit-remaining')).toBe('0');

    expect((await get(`${gw.url}/lc-msg`, { 'x-user': 'a' })).status).toBe(200);
    expect((await get(`${gw.url}/lc-msg`, { 'x-user': 'b' })).status).toBe(200);
    r = await get(`${gw.url}/lc-msg`, { 'x-user': 'a' });
    expect(r.status).toBe(429);
    expect(JSON.parse(r.body)).toEqual({ error_msg: 'slow down' });
  });

  it('keeps counters across config snapshots and shares them within a group', async () => {
    const conf = { count: 3, time_window: 60, group: 'g1', key_type: 'constant', key: 'all' };
    await gw.put('/routes/3', { uri: '/g/a', plugins: { 'limit-count': conf }, upstream: upstream() });
    await gw.put('/routes/4', { uri: '/g/b', plugins: { 'limit-count': conf }, upstream: upstream() });
    expect((await get(`${gw.url}/g/a`)).status).toBe(200);
    expect((await get(`${gw.url}/g/b`)).status).toBe(200);
    // A new snapshot (an unrelated change) must not reset the counters.
    await gw.put('/routes/99', { uri: '/unrelated', upstream: upstream() });
    expect((await get(`${gw.url}/g/a`)).headers.get('x-ratelimit-remaining')).toBe('0');
    expect((await get(`${gw.url}/g/b`)).status).toBe(503);
  });

  it('renames the quota headers from plugin_metadata and can hide them', async () => {
    await gw.put('/plugin_metadata/limit-count', { limit_header: 'X-Limit', remaining_header: 'X-Left', reset_header: 'X-Reset' });
    await gw.put('/routes/5', { uri: '/meta', plugins: { 'limit-count': { count: 5, time_window: 10 } }, upstream: upstream() });
    await gw.put('/routes/6', { uri: '/hidden', plugins: { 'limit-count': { count: 5, time_window: 10, show_limit_quota_header: false } }, upstream: upstream() });
    let r = await get(`${gw.url}/meta`);
    expect(r.headers.get('x-limit')).toBe('5');
    expect(r.headers.get('x-left')).toBe('4');
    expect(r.headers.get('x-ratelimit-limit')).toBeNull();
    r = await get(`${gw.url}/hidden`);
    expect(r.status).toBe(200);
    expect(r.headers.get('x-limit')).toBeNull();
    await gw.admin('DELETE', '/plugin_metadata/limit-count');
    await gw.synced();
  });

  it('shares one limit between two gateways through Redis', async () => {
    const conf = {
      count: 3,
      time_window: 60,
      policy: 'redis',
      redis_host: '127.0.0.1',
      redis_port: redis.port,
      redis_timeout: 1000,
    };
    await gw.put('/routes/10', { uri: '/shared', plugins: { 'limit-count': conf }, upstream: upstream() });
    await gw2.put('/routes/10', { uri: '/shared', plugins: { 'limit-count': conf }, upstream: upstream() });
    const statuses: number[] = [];
    const remaining: (string | null)[] = [];
    for (const g of [gw, gw2, gw, gw2, gw]) {
      const r = await get(`${g.url}/shared`);
      statuses.push(r.status);
      remaining.push(r.headers.get('x-ratelimit-remaining'));
    }
    expect(statuses).toEqual([200, 200, 200, 503, 503]);
    expect(remaining.slice(0, 3)).toEqual(['2', '1', '0']);
    const client = new Redis({ host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: 1 });
    const keys = await client.keys('plugin-limit-count:*');
    await client.quit();
    expect(keys.length).toBe(1);
    // Both gateways (one process here) share one connection per Redis target.
    expect(redisConnectionCount()).toBe(1);
  });

  it('counts sliding windows in Redis', async () => {
    const conf = { count: 2, time_window: 60, window_type: 'sliding', policy: 'redis', redis_host: '127.0.0.1', redis_port: redis.port };
    await gw.put('/routes/13', { uri: '/sliding', plugins: { 'limit-count': conf }, upstream: upstream() });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await get(`${gw.url}/sliding`)).status);
    expect(statuses).toEqual([200, 200, 503]);
  });

  it('answers 500 when Redis is unreachable unless allow_degradation', async () => {
    const dead = await freePort();
    const conf = { count: 3, time_window: 60, policy: 'redis', redis_host: '127.0.0.1', redis_port: dead, redis_timeout: 200 };
    await gw.put('/routes/11', { uri: '/dead', plugins: { 'limit-count': conf }, upstream: upstream() });
    await gw.put('/routes/12', { uri: '/degraded', plugins: { 'limit-count': { ...conf, allow_degradation: true } }, upstream: upstream() });
    const r = await get(`${gw.url}/dead`);
    expect(r.status).toBe(500);
    expect(JSON.parse(r.body)).toEqual({ error_msg: 'failed to limit count' });
    expect((await get(`${gw.url}/degraded`)).status).toBe(200);
  });

  it('sliding windows weight the previous window', () => {
    let now = 60_000 * 10;
    const store = new LocalCounterStore(() => now);
    for (let i = 0; i < 4; i++) expect(store.incr('k', 60_000, 4, 'sliding').allowed).toBe(true);
    expect(store.incr('k', 60_000, 4, 'sliding').allowed).toBe(false);
    // Half-way through the next window half of the previous count still weighs in.
    now = 60_000 * 10 + 90_000;
    const r = store.incr('k', 60_000, 4, 'sliding');
    expect(r.count).toBe(3);
    expect(r.allowed).toBe(true);
    expect(store.incr('k', 60_000, 4, 'sliding').allowed).toBe(true);
    expect(store.incr('k', 60_000, 4, 'sliding').allowed).toBe(false);
    // Fixed windows restart after the window.
    now = 0;
    const fixed = new LocalCounterStore(() => now);
    expect(fixed.incr('f', 1000, 1, 'fixed').allowed).toBe(true);
    expect(fixed.incr('f', 1000, 1, 'fixed').allowed).toBe(false);
    now = 1000;
    expect(fixed.incr('f', 1000, 1, 'fixed')).toEqual({ count: 1, resetMs: 1000, allowed: true });
    fixed.sweep();
    store.sweep();
  });
});
