// limit-req against the real gateway and real redis-server peers: APISIX schema, the leaky bucket's delays
// (measured), nodelay, rejection bodies, var_combination keys, one bucket shared by two gateways through Redis
// and a one-node Redis Cluster, and 500 / allow_degradation when Redis is killed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { limitReqPlugin as def } from '../../../src/plugin/builtin/limit-req.ts';
import { REJECTED } from '../../../src/plugin/counters/counter.ts';
import { LocalLeakyBuckets } from '../../../src/plugin/counters/leaky.ts';
import { closeRedisCounters } from '../../../src/plugin/counters/redis.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { freePort } from '../../helpers/ports.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { confError } from '../helpers.ts';
import { startRedis, startRedisCluster, type RedisPeer } from '../counters/redis-peers.ts';

interface Timed {
  status: number;
  body: string;
  ms: number;
}

async function timed(url: string, headers: Record<string, string> = {}): Promise<Timed> {
  const t = performance.now();
  const r = await fetch(url, { headers });
  const body = await r.text();
  return { status: r.status, body, ms: performance.now() - t };
}

describe('limit-req', () => {
  let gw: TestGateway;
  let gw2: TestGateway;
  let up: EchoServer;
  let redis: RedisPeer;
  let cluster: RedisPeer;

  beforeAll(async () => {
    [gw, gw2, up, redis, cluster] = await Promise.all([startTestGateway(), startTestGateway(), startEcho('a'), startRedis(), startRedisCluster()]);
  }, 30_000);
  afterAll(async () => {
    await gw?.close();
    await gw2?.close();
    await up?.close();
    closeRedisCounters();
    await Promise.all([redis?.stop(), cluster?.stop()]);
  });

  const upstream = () => ({ nodes: { [up.addr]: 1 } });
  const route = (gwx: TestGateway, id: string, uri: string, conf: Record<string, unknown>) =>
    gwx.put(`/routes/${id}`, { uri, plugins: { 'limit-req': conf }, upstream: upstream() });

  it('validates like APISIX and registers with its priority', () => {
    expect(def).toMatchObject({ name: 'limit-req', priority: 1001, version: '0.1' });
    expect(confError(def, { rate: 1, burst: 0, key: 'remote_addr' })).toBeNull();
    expect(confError(def, { rate: 0, burst: 0, key: 'remote_addr' })).not.toBeNull();
    expect(confError(def, { rate: 1, burst: -1, key: 'remote_addr' })).not.toBeNull();
    expect(confError(def, { rate: 1, burst: 1 })).toMatch(/key/);
    expect(confError(def, { rate: 1, burst: 1, key: 'k', key_type: 'constant' })).not.toBeNull();
    expect(confError(def, { rate: 1, burst: 1, key: 'k', policy: 'redis' })).toMatch(/then clause did not match/);
    expect(confError(def, { rate: 1, burst: 1, key: 'k', policy: 'redis-sentinel' })).not.toBeNull();
  });

  it('delays requests within the burst by excess / rate and rejects beyond it', async () => {
    // 2 req/s: the bucket drains one request per 500 ms, far more than the spread of 4 concurrent requests.
    await route(gw, '1', '/req', { rate: 2, burst: 2, key: 'remote_addr' });
    const all = await Promise.all([0, 1, 2, 3].map(() => timed(`${gw.url}/req`)));
    const ok = all.filter((r) => r.status === 200).sort((a, b) => a.ms - b.ms);
    const rejected = all.filter((r) => r.status === 503);
    expect(ok).toHaveLength(3);
    expect(rejected).toHaveLength(1);
    expect(rejected[0]!.body).toContain('503 Service Temporarily Unavailable');
    // Excess 1 and 2 at 2 req/s: about 500 and 1000 ms, less the spread of the arrivals (timers never fire
    // early; upper bounds are not asserted).
    expect(ok[1]!.ms).toBeGreaterThanOrEqual(300);
    expect(ok[2]!.ms).toBeGreaterThanOrEqual(800);
  });

  it('answers at once with nodelay, with rejected_code/rejected_msg and a var_combination key', async () => {
    await route(gw, '2', '/nodelay', {
      rate: 0.5,
      burst: 1,
      nodelay: true,
      key_type: 'var_combination',
      key: '$http_a $http_b',
      rejected_code: 429,
      rejected_msg: 'too many',
    });
    const h = { a: 'x', b: 'y' };
    const first = await timed(`${gw.url}/nodelay`, h);
    const second = await timed(`${gw.url}/nodelay`, h);
    // Without nodelay the second would wait 2 s.
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(second.ms).toBeLessThan(1500);
    const third = await timed(`${gw.url}/nodelay`, h);
    expect(third.status).toBe(429);
    expect(JSON.parse(third.body)).toEqual({ error_msg: 'too many' });
    // Another combination has its own bucket.
    expect((await timed(`${gw.url}/nodelay`, { a: 'x', b: 'z' })).status).toBe(200);
  });

  const sharedBucket = async (id: string, uri: string, conf: Record<string, unknown>) => {
    await route(gw, id, uri, conf);
    await route(gw2, id, uri, conf);
    const out: number[] = [];
    for (const g of [gw, gw2, gw, gw2]) out.push((await timed(`${g.url}${uri}`)).status);
    return out;
  };

  it('shares one bucket between two gateways through Redis', async () => {
    const conf = { rate: 0.1, burst: 1, nodelay: true, key: 'remote_addr', policy: 'redis', redis_host: '127.0.0.1', redis_port: redis.port };
    expect(await sharedBucket('3', '/redis', conf)).toEqual([200, 200, 503, 503]);
  });

  it('shares one bucket through a Redis Cluster', async () => {
    const conf = {
      rate: 0.1,
      burst: 1,
      nodelay: true,
      key: 'remote_addr',
      policy: 'redis-cluster',
      redis_cluster_nodes: [`127.0.0.1:${cluster.port}`],
      redis_cluster_name: 'test',
    };
    expect(await sharedBucket('4', '/cluster', conf)).toEqual([200, 200, 503, 503]);
  });

  it('delays through Redis as it does locally', async () => {
    await route(gw, '5', '/redis-delay', { rate: 10, burst: 1, key: 'remote_addr', policy: 'redis', redis_host: '127.0.0.1', redis_port: redis.port });
    const [a, b] = await Promise.all([timed(`${gw.url}/redis-delay`), timed(`${gw.url}/redis-delay`)]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(Math.max(a.ms, b.ms)).toBeGreaterThanOrEqual(80);
  });

  it('answers 500 when Redis dies unless allow_degradation; an unreachable cluster is bounded by redis_timeout', async () => {
    const own = await startRedis();
    const dead = await freePort();
    try {
      const conf = { rate: 100, burst: 100, key: 'remote_addr', policy: 'redis', redis_host: '127.0.0.1', redis_port: own.port, redis_timeout: 200 };
      await route(gw, '6', '/dead', conf);
      await route(gw, '7', '/degraded', { ...conf, allow_degradation: true });
      await route(gw, '8', '/dead-cluster', {
        rate: 1,
        burst: 1,
        key: 'remote_addr',
        policy: 'redis-cluster',
        redis_cluster_nodes: [`127.0.0.1:${dead}`],
        redis_cluster_name: 'x',
        redis_timeout: 300,
      });
      expect((await timed(`${gw.url}/dead`)).status).toBe(200);
      await own.peer.stop('SIGKILL');
      expect((await timed(`${gw.url}/dead`)).status).toBe(500);
      expect((await timed(`${gw.url}/degraded`)).status).toBe(200);
      const c = await timed(`${gw.url}/dead-cluster`);
      expect(c.status).toBe(500);
      expect(c.ms).toBeGreaterThanOrEqual(250);
    } finally {
      await own.stop();
    }
  });

  it('follows resty.limit.req arithmetic', () => {
    let now = 1_000_000;
    const b = new LocalLeakyBuckets(() => now);
    expect(b.leak('k', 2, 1)).toBe(0);
    expect(b.leak('k', 2, 1)).toBe(0.5);
    expect(b.leak('k', 2, 1)).toBe(REJECTED);
    // 250 ms drain half a request: excess 1 - 0.5 + 1 = 1.5 > 1 is still rejected, 500 ms later 1 - 1 + 1 = 1 fits.
    now += 250;
    expect(b.leak('k', 2, 1)).toBe(REJECTED);
    now += 250;
    expect(b.leak('k', 2, 1)).toBe(0.5);
    // Long idle: the bucket drains to nothing and is swept as if never seen.
    now += 10_000;
    b.sweep();
    expect(b.size).toBe(0);
    expect(b.leak('k', 2, 1)).toBe(0);
  });
});
