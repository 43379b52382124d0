// limit-count against the real gateway and real redis-server peers (single, one-node cluster, sentinel):
// APISIX schema checks, fixed/sliding windows, rules with header prefixes and templated counts, groups,
// X-RateLimit-* headers, a count shared by two gateways, and 500 / allow_degradation when Redis is killed.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { limitCountPlugin as def } from '../../../src/plugin/builtin/limit-count.ts';
import { LocalCounterStore } from '../../../src/plugin/counters/local.ts';
import { closeRedisCounters } from '../../../src/plugin/counters/redis.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { confError } from '../helpers.ts';
import { startRedis, startRedisCluster, startRedisSentinel, type RedisPeer } from '../counters/redis-peers.ts';

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: string }> {
  const r = await fetch(url, { headers });
  return { status: r.status, headers: r.headers, body: await r.text() };
}

async function statuses(url: string, n: number, headers: Record<string, string> = {}): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await get(url, headers)).status);
  return out;
}

describe('limit-count', () => {
  let gw: TestGateway;
  let gw2: TestGateway;
  let up: EchoServer;
  let redis: RedisPeer;
  let cluster: RedisPeer;
  let sentinel: RedisPeer;

  beforeAll(async () => {
    [gw, gw2, up, redis, cluster, sentinel] = await Promise.all([
      startTestGateway(),
      startTestGateway(),
      startEcho('a'),
      startRedis(),
      startRedisCluster(),
      startRedisSentinel(),
    ]);
  }, 30_000);
  afterAll(async () => {
    await gw?.close();
    await gw2?.close();
    await up?.close();
    closeRedisCounters();
    await Promise.all([redis?.stop(), cluster?.stop(), sentinel?.stop()]);
  });

  const upstream = () => ({ nodes: { [up.addr]: 1 } });

  it('validates like APISIX', () => {
    const ok = { count: 1, time_window: 1 };
    expect(confError(def, { count: 0, time_window: 1 })).not.toBeNull();
    expect(confError(def, { count: 1 })).not.toBeNull();
    expect(confError(def, { ...ok, key_type: 'other' })).not.toBeNull();
    expect(confError(def, { ...ok, policy: 'redis' })).toMatch(/then clause did not match/);
    expect(confError(def, { ...ok, policy: 'redis-cluster', redis_cluster_nodes: ['127.0.0.1:1'] })).not.toBeNull();
    expect(confError(def, { ...ok, policy: 'redis-sentinel', redis_master_name: 'm' })).not.toBeNull();
    const sentinels = [{ host: '127.0.0.1', port: 26379 }];
    expect(confError(def, { ...ok, policy: 'redis-sentinel', redis_master_name: 'm', redis_sentinels: sentinels })).toBeNull();
    expect(confError(def, { ...ok, rejected_code: 600 })).not.toBeNull();
    expect(confError(def, { ...ok, window_type: 'sliding' })).toBeNull();
    expect(confError(def, { count: '${http_n ?? 2}', time_window: 60 })).toBeNull();
    const rules = [{ count: 1, time_window: 1, key: '${http_user}' }];
    expect(confError(def, { ...ok, rules })).toBe(
      'failed to check the configuration of plugin limit-count err: count/time_window and rules cannot be specified at the same time',
    );
    expect(confError(def, { rules: [...rules, { count: 2, time_window: 2, key: '${http_user}' }] })).toBe(
      "failed to check the configuration of plugin limit-count err: duplicate key '${http_user}' in rules",
    );
    expect(confError(def, { rules, group: 'g' })).toMatch(/group and rules cannot be specified at the same time/);
    expect(confError(def, { ...ok, policy: 'redis', redis_host: 'h1', sync_interval: 0.01 })).toMatch(/sync_interval should not be smaller than 0.1/);
    expect(confError(def, { ...ok, policy: 'redis', redis_host: 'h1', sync_interval: 2 })).toMatch(/sync_interval should be smaller than time_window/);
  });

  it('refuses a group whose conf differs from the group conf already seen', () => {
    expect(confError(def, { count: 2, time_window: 60, group: 'mismatch-g' })).toBeNull();
    expect(confError(def, { count: 2, time_window: 60, group: 'mismatch-g' })).toBeNull();
    expect(confError(def, { count: 3, time_window: 60, group: 'mismatch-g' })).toBe(
      'failed to check the configuration of plugin limit-count err: group conf mismatched',
    );
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
    // APISIX prints the full window on the first request, then seconds with two decimals.
    expect(r.headers.get('x-ratelimit-reset')).toBe('60');
    r = await get(`${gw.url}/lc`);
    expect(r.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(Number(r.headers.get('x-ratelimit-reset'))).toBeGreaterThan(50);
    expect(r.headers.get('x-ratelimit-reset')).toMatch(/^\d+(\.\d{1,2})?$/);
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
    // A group member with another conf is refused by the Admin API.
    const bad = await gw.admin('PUT', '/routes/5', { uri: '/g/c', plugins: { 'limit-count': { ...conf, count: 4 } }, upstream: upstream() });
    expect(bad.status).toBe(400);
    expect(bad.body.error_msg).toBe('failed to check the configuration of plugin limit-count err: group conf mismatched');
  });

  it('applies every matching rule with its own window and prefixed headers', async () => {
    await gw.put('/routes/20', {
      uri: '/rules',
      plugins: {
        'limit-count': {
          rejected_msg: 'rejected',
          rules: [
            { key: '${http_user}', count: '${http_user_count}', time_window: 60, header_prefix: 'jack' },
            { key: '${http_project}', count: 3, time_window: 60 },
          ],
        },
      },
      upstream: upstream(),
    });
    // No rule applies: APISIX answers 500.
    expect((await get(`${gw.url}/rules`)).status).toBe(500);
    const jack = { user: 'jack', 'user-count': '2' };
    let r = await get(`${gw.url}/rules`, jack);
    expect(r.status).toBe(200);
    expect(r.headers.get('x-jack-ratelimit-limit')).toBe('2');
    expect(r.headers.get('x-jack-ratelimit-remaining')).toBe('1');
    expect(r.headers.get('x-jack-ratelimit-reset')).toBe('60');
    expect(await statuses(`${gw.url}/rules`, 2, jack)).toEqual([200, 503]);
    // The second rule's headers carry its index as prefix.
    r = await get(`${gw.url}/rules`, { project: 'apisix' });
    expect(r.headers.get('x-2-ratelimit-limit')).toBe('3');
    expect(r.headers.get('x-2-ratelimit-remaining')).toBe('2');
    expect(await statuses(`${gw.url}/rules`, 3, { project: 'apisix' })).toEqual([200, 200, 503]);
    // Both rules apply: the first rejects for jack even though the project still has room elsewhere.
    r = await get(`${gw.url}/rules`, { ...jack, project: 'other' });
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body)).toEqual({ error_msg: 'rejected' });
    // A count that does not resolve to a positive integer fails the request.
    expect((await get(`${gw.url}/rules`, { user: 'ann', 'user-count': 'many' })).status).toBe(500);
  });

  it('resolves templated count defaults per request', async () => {
    await gw.put('/routes/21', {
      uri: '/dyn',
      plugins: { 'limit-count': { count: '${http_n ?? 2}', time_window: 60, key: 'http_k' } },
      upstream: upstream(),
    });
    expect(await statuses(`${gw.url}/dyn`, 3, { k: 'a' })).toEqual([200, 200, 503]);
    expect(await statuses(`${gw.url}/dyn`, 4, { k: 'b', n: '3' })).toEqual([200, 200, 200, 503]);
  });

  it('renames the quota headers from plugin_metadata and can hide them', async () => {
    await gw.put('/plugin_metadata/limit-count', { limit_header: 'X-Limit', remaining_header: 'X-Left', reset_header: 'X-Reset' });
    await gw.put('/routes/6', { uri: '/meta', plugins: { 'limit-count': { count: 5, time_window: 10 } }, upstream: upstream() });
    await gw.put('/routes/7', { uri: '/hidden', plugins: { 'limit-count': { count: 5, time_window: 10, show_limit_quota_header: false } }, upstream: upstream() });
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

  const shared = async (id: string, uri: string, conf: Record<string, unknown>) => {
    await gw.put(`/routes/${id}`, { uri, plugins: { 'limit-count': conf }, upstream: upstream() });
    await gw2.put(`/routes/${id}`, { uri, plugins: { 'limit-count': conf }, upstream: upstream() });
    const seen: number[] = [];
    const remaining: (string | null)[] = [];
    for (const g of [gw, gw2, gw, gw2, gw]) {
      const r = await get(`${g.url}${uri}`);
      seen.push(r.status);
      remaining.push(r.headers.get('x-ratelimit-remaining'));
    }
    return { seen, remaining };
  };

  it('shares one limit between two gateways through Redis', async () => {
    const r = await shared('10', '/shared', { count: 3, time_window: 60, policy: 'redis', redis_host: '127.0.0.1', redis_port: redis.port });
    expect(r.seen).toEqual([200, 200, 200, 503, 503]);
    expect(r.remaining.slice(0, 3)).toEqual(['2', '1', '0']);
    const client = new Redis({ host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: 1 });
    const keys = await client.keys('plugin-limit-count:*');
    await client.quit();
    expect(keys.length).toBe(1);
  });

  it('shares one limit through a Redis Cluster', async () => {
    const conf = {
      count: 3,
      time_window: 60,
      policy: 'redis-cluster',
      redis_cluster_nodes: [`127.0.0.1:${cluster.port}`],
      redis_cluster_name: 'test',
    };
    expect((await shared('11', '/cluster', conf)).seen).toEqual([200, 200, 200, 503, 503]);
    const sliding = { ...conf, window_type: 'sliding', count: 2 };
    await gw.put('/routes/12', { uri: '/cluster-sliding', plugins: { 'limit-count': sliding }, upstream: upstream() });
    expect(await statuses(`${gw.url}/cluster-sliding`, 3)).toEqual([200, 200, 503]);
  });

  it('shares one limit through Redis Sentinel', async () => {
    const conf = {
      count: 3,
      time_window: 60,
      policy: 'redis-sentinel',
      redis_sentinels: [{ host: '127.0.0.1', port: sentinel.port }],
      redis_master_name: 'mymaster',
    };
    expect((await shared('13', '/sentinel', conf)).seen).toEqual([200, 200, 200, 503, 503]);
  });

  it('counts sliding windows in Redis', async () => {
    const conf = { count: 2, time_window: 60, window_type: 'sliding', policy: 'redis', redis_host: '127.0.0.1', redis_port: redis.port };
    await gw.put('/routes/14', { uri: '/sliding', plugins: { 'limit-count': conf }, upstream: upstream() });
    expect(await statuses(`${gw.url}/sliding`, 3)).toEqual([200, 200, 503]);
  });

  it('answers 500 when its Redis dies unless allow_degradation, and recovers when it is back', async () => {
    const own = await startRedis();
    try {
      const conf = { count: 100, time_window: 60, policy: 'redis', redis_host: '127.0.0.1', redis_port: own.port, redis_timeout: 200 };
      await gw.put('/routes/15', { uri: '/dead', plugins: { 'limit-count': conf }, upstream: upstream() });
      await gw.put('/routes/16', { uri: '/degraded', plugins: { 'limit-count': { ...conf, allow_degradation: true } }, upstream: upstream() });
      expect((await get(`${gw.url}/dead`)).status).toBe(200);
      expect((await get(`${gw.url}/degraded`)).headers.get('x-ratelimit-remaining')).toBe('99');
      await own.peer.stop('SIGKILL');
      const r = await get(`${gw.url}/dead`);
      expect(r.status).toBe(500);
      expect(JSON.parse(r.body)).toEqual({ error_msg: 'failed to limit count' });
      const d = await get(`${gw.url}/degraded`);
      expect(d.status).toBe(200);
      expect(d.headers.get('x-ratelimit-limit')).toBeNull();
      const back = await startRedis(own.port);
      try {
        await expect.poll(async () => (await get(`${gw.url}/dead`)).status, { timeout: 10_000, interval: 200 }).toBe(200);
      } finally {
        await back.stop();
      }
    } finally {
      await own.stop();
    }
  });

  it('sliding windows weight the previous window', () => {
    let now = 60_000 * 10;
    const store = new LocalCounterStore(() => now);
    for (let i = 0; i < 4; i++) expect(store.incr('k', 60_000, 4, 'sliding').allowed).toBe(true);
    // The current window alone is full: retry at its end.
    expect(store.incr('k', 60_000, 4, 'sliding')).toEqual({ count: 5, resetMs: 60_000, allowed: false });
    // Half-way through the next window half of the previous count still weighs in.
    now = 60_000 * 10 + 90_000;
    const r = store.incr('k', 60_000, 4, 'sliding');
    expect(r.count).toBe(3);
    expect(r.allowed).toBe(true);
    expect(store.incr('k', 60_000, 4, 'sliding').allowed).toBe(true);
    // APISIX's retry estimate: remaining - (limit - current) / previous rate = 30 s - 2 * 15 s.
    expect(store.incr('k', 60_000, 4, 'sliding')).toMatchObject({ resetMs: 0, allowed: false });
    now += 10_000;
    expect(store.incr('k', 60_000, 3, 'sliding')).toMatchObject({ resetMs: 20_000 - (1 * 60_000) / 4, allowed: false });
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
