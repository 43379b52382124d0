// limit-conn against the real gateway, a slow real upstream and real redis-server: concurrency bound with
// burst delay (measured) and rejection, slots released at log time, rules, one cluster-wide count shared by two
// gateways through Redis, and stream sessions (preread/log) counted through Redis.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/observability/logger.ts';
import { limitConnPlugin as def, limitConnTrackedKeys } from '../../../src/plugin/builtin/limit-conn.ts';
import type { StreamContext } from '../../../src/plugin/context.ts';
import { closeRedisCounters } from '../../../src/plugin/counters/redis.ts';
import type { PluginEnv } from '../../../src/plugin/plugin.ts';
import { MapVars } from '../../../src/router/vars.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
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

function streamCtx(remoteAddr: string): StreamContext {
  return { vars: new MapVars({ remote_addr: remoteAddr }), remoteAddr, routeId: 's1', pluginData: new Map() } as unknown as StreamContext;
}

const env = (scopeKey: string): PluginEnv => ({
  logger: silentLogger,
  metadata: undefined,
  attr: undefined,
  scopeKey,
  consumers: { find: () => undefined, withPlugin: () => [] },
});

describe('limit-conn', () => {
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
  const route = (g: TestGateway, id: string, uri: string, conf: Record<string, unknown>) =>
    g.put(`/routes/${id}`, { uri, plugins: { 'limit-conn': conf }, upstream: upstream() });

  it('validates like APISIX', () => {
    const ok = { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr' };
    expect(confError(def, ok)).toBeNull();
    expect(confError(def, { ...ok, conn: 0 })).not.toBeNull();
    expect(confError(def, { conn: 1, burst: 0, key: 'remote_addr' })).not.toBeNull();
    expect(confError(def, { default_conn_delay: 0.1, rules: [{ conn: 1, burst: 0, key: '${http_u}' }] })).toBeNull();
    expect(confError(def, { ...ok, policy: 'redis' })).toMatch(/then clause did not match/);
    expect(confError(def, { ...ok, policy: 'redis', redis_host: '127.0.0.1', key_ttl: 60 })).toBeNull();
    expect(confError(def, { ...ok, policy: 'redis-cluster', redis_cluster_nodes: ['127.0.0.1:1'], redis_cluster_name: 'c' })).toBeNull();
  });

  it('admits conn, delays the burst by default_conn_delay, rejects above and frees slots at log', async () => {
    const conf = { conn: 1, burst: 1, default_conn_delay: 0.2, only_use_default_delay: true, key: 'remote_addr', rejected_msg: 'busy' };
    await route(gw, '1', '/delay/300', conf);
    const all = await Promise.all([0, 1, 2].map(() => timed(`${gw.url}/delay/300`)));
    const ok = all.filter((r) => r.status === 200).sort((a, b) => a.ms - b.ms);
    const rejected = all.filter((r) => r.status === 503);
    expect(ok).toHaveLength(2);
    expect(rejected).toHaveLength(1);
    expect(JSON.parse(rejected[0]!.body)).toEqual({ error_msg: 'busy' });
    // The second holder waited unit_delay * floor((2 - 1) / 1) = 200 ms before its 300 ms upstream call.
    expect(ok[1]!.ms).toBeGreaterThanOrEqual(480);
    // Every slot is back: a lone request is neither delayed nor rejected.
    const again = await timed(`${gw.url}/delay/300`);
    expect(again.status).toBe(200);
    expect(limitConnTrackedKeys()).toBe(0);
  });

  it('follows the observed latency unless only_use_default_delay', async () => {
    const conf = { conn: 1, burst: 1, default_conn_delay: 0.01, key: 'remote_addr' };
    await route(gw, '4', '/delay/301', conf);
    // One lone 300 ms request: unit_delay becomes (0.01 + 0.3) / 2, about 155 ms.
    expect((await timed(`${gw.url}/delay/301`)).status).toBe(200);
    const two = (await Promise.all([timed(`${gw.url}/delay/301`), timed(`${gw.url}/delay/301`)])).sort((a, b) => a.ms - b.ms);
    expect(two.map((r) => r.status)).toEqual([200, 200]);
    // With the default delay only it would have waited 10 ms before its 300 ms upstream call.
    expect(two[1]!.ms).toBeGreaterThanOrEqual(430);
  });

  it('applies rules whose key resolves', async () => {
    await route(gw, '2', '/delay/200', { default_conn_delay: 0.1, rules: [{ conn: 1, burst: 0, key: '${http_user}' }], rejected_code: 429 });
    expect((await timed(`${gw.url}/delay/200`)).status).toBe(500);
    const two = await Promise.all([timed(`${gw.url}/delay/200`, { user: 'u1' }), timed(`${gw.url}/delay/200`, { user: 'u1' })]);
    expect(two.map((r) => r.status).sort()).toEqual([200, 429]);
    const other = await Promise.all([timed(`${gw.url}/delay/200`, { user: 'u2' }), timed(`${gw.url}/delay/200`, { user: 'u3' })]);
    expect(other.map((r) => r.status)).toEqual([200, 200]);
  });

  it('counts in-flight requests cluster-wide through Redis', async () => {
    const conf = { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr', policy: 'redis', redis_host: '127.0.0.1', redis_port: redis.port };
    await route(gw, '3', '/delay/400', conf);
    await route(gw2, '3', '/delay/400', conf);
    const slow = timed(`${gw.url}/delay/400`);
    // Let the first request take its slot before the second gateway asks.
    await new Promise((r) => setTimeout(r, 150));
    expect((await timed(`${gw2.url}/delay/400`)).status).toBe(503);
    expect((await slow).status).toBe(200);
    // The release is asynchronous (fire and forget); the slot frees within moments.
    await expect.poll(async () => (await timed(`${gw2.url}/delay/400`)).status, { timeout: 5000, interval: 100 }).toBe(200);
  });

  it('counts in-flight requests through a Redis Cluster', async () => {
    const conf = {
      conn: 1,
      burst: 0,
      default_conn_delay: 0.1,
      key: 'remote_addr',
      policy: 'redis-cluster',
      redis_cluster_nodes: [`127.0.0.1:${cluster.port}`],
      redis_cluster_name: 'test',
    };
    await route(gw, '5', '/delay/401', conf);
    await route(gw2, '5', '/delay/401', conf);
    const slow = timed(`${gw.url}/delay/401`);
    await new Promise((r) => setTimeout(r, 150));
    expect((await timed(`${gw2.url}/delay/401`)).status).toBe(503);
    expect((await slow).status).toBe(200);
    await expect.poll(async () => (await timed(`${gw2.url}/delay/401`)).status, { timeout: 5000, interval: 100 }).toBe(200);
  });

  it('counts stream sessions through Redis and releases them at log', async () => {
    const conf = { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr', key_type: 'var', policy: 'redis', redis_host: '127.0.0.1', redis_port: redis.port, redis_prefix: 'limit_conn', key_ttl: 60, rejected_code: 503 };
    const a = def.create(conf, env('stream_route:s1'));
    const b = def.create(conf, env('stream_route:s1'));
    const s1 = streamCtx('9.9.9.9');
    expect(await a.preread!(s1)).toBeUndefined();
    expect(await b.preread!(streamCtx('9.9.9.9'))).toEqual({ status: 503 });
    expect(await b.preread!(streamCtx('8.8.8.8'))).toBeUndefined();
    a.streamLog!(s1);
    await expect.poll(async () => b.preread!(streamCtx('9.9.9.9')), { timeout: 5000, interval: 50 }).toBeUndefined();
    a.destroy!();
    b.destroy!();
  });
});
