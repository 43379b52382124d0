// hmac-auth reject_replays with replay_policy redis: two gateways sharing one real Redis refuse a signature
// the other accepted; a Redis that stops answering fails the check closed (500), never lets a replay pass.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { confError } from '../helpers.ts';
import { hmacAuthPlugin as def } from '../../../src/plugin/builtin/hmac-auth.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { startRedis, type RedisPeer } from '../counters/redis-peers.ts';
import { signedHeaders } from './hmac-auth-sign.ts';

const CANT = "client request can't be validated";
const jack = { keyId: 'jack-key', secret: 'jack-secret' };

describe('hmac-auth reject_replays shared through Redis', () => {
  let redis: RedisPeer;
  let up: EchoServer;
  let a: TestGateway;
  let b: TestGateway;

  beforeAll(async () => {
    [redis, up, a, b] = await Promise.all([startRedis(), startEcho('up'), startTestGateway(), startTestGateway()]);
    const conf = { reject_replays: true, replay_policy: 'redis', redis_host: '127.0.0.1', redis_port: redis.port, redis_timeout: 500 };
    for (const gw of [a, b]) {
      await gw.put('/consumers/jack', { username: 'jack', plugins: { 'hmac-auth': { key_id: jack.keyId, secret_key: jack.secret } } });
      await gw.put('/routes/h', { uri: '/h/*', plugins: { 'hmac-auth': conf }, upstream: { nodes: { [up.addr]: 1 } } });
      await gw.synced();
    }
  }, 60_000);
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await up?.close();
    await redis?.stop();
  });

  it('requires the Redis fields of the chosen replay_policy', () => {
    // APISIX's jsonschema words it the same way for limit-count.
    expect(confError(def, { reject_replays: true, replay_policy: 'redis' })).toContain('then clause did not match');
    expect(confError(def, { reject_replays: true, replay_policy: 'redis-cluster' })).toContain('clause did not match');
    expect(confError(def, { reject_replays: true, replay_policy: 'memcached' })).not.toBeNull();
    expect(confError(def, { reject_replays: true, replay_policy: 'redis', redis_host: '127.0.0.1' })).toBeNull();
  });

  it('a signature accepted by one gateway is a replay for the other', async () => {
    const h = signedHeaders({ ...jack, target: '/h/x' });
    let r = await fetch(`${a.url}/h/x`, { headers: h });
    expect(r.status).toBe(200);
    await r.arrayBuffer();
    r = await fetch(`${b.url}/h/x`, { headers: h });
    expect(r.status).toBe(401);
    expect(await r.json()).toEqual({ message: CANT });
    // A fresh signature still passes on the other gateway.
    r = await fetch(`${b.url}/h/y`, { headers: signedHeaders({ ...jack, target: '/h/y' }) });
    expect(r.status).toBe(200);
    await r.arrayBuffer();
  });

  it('a Redis that does not answer fails the check closed', async () => {
    await redis.stop();
    const seen = up.seen.length;
    const r = await fetch(`${a.url}/h/z`, { headers: signedHeaders({ ...jack, target: '/h/z' }) });
    expect(r.status).toBe(500);
    expect(await r.json()).toEqual({ message: 'failed to check the signature against replays' });
    expect(up.seen.length).toBe(seen);
  });
});
