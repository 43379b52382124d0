// hmac-auth's replay_policy Redis passwords are route-conf secrets: stored encrypted at rest like
// limit-count's (APISIX encrypt_fields redis_password / sentinel_password), decrypted for the plugin that
// authenticates to Redis with them, and shown decrypted by the Admin API as APISIX shows encrypted fields.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fieldCodecFromConfig, lookupFromPluginDefs } from '../../../src/config/encryption.ts';
import { hmacAuthPlugin as def } from '../../../src/plugin/builtin/hmac-auth.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { startRedis, type RedisPeer } from '../counters/redis-peers.ts';
import { signedHeaders } from './hmac-auth-sign.ts';

const KEY = 'Qm7Tz2Lc9Vb4Nx8Rk1Wd6Hf3Jp5Gs0Ya'; // 32 bytes: AES-256
const PASSWORD = 'replay-redis-pass-3f9c';
const jack = { keyId: 'jack-key', secret: 'jack-secret' };

/** openssl as the independent reference for APISIX's format (AES-256-CBC, IV = the key's first 16 bytes). */
function opensslDecrypt(key: string, b64: string): Promise<string> {
  const k = Buffer.from(key);
  return new Promise((resolve, reject) => {
    const child = execFile(
      'openssl',
      ['enc', '-d', '-aes-256-cbc', '-K', k.toString('hex'), '-iv', k.subarray(0, 16).toString('hex'), '-base64', '-A'],
      { timeout: 10_000 },
      (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout)),
    );
    child.stdin?.end(b64);
  });
}

describe('hmac-auth replay_policy Redis password at rest', () => {
  let redis: RedisPeer;
  let up: EchoServer;
  let gw: TestGateway;

  beforeAll(async () => {
    [redis, up, gw] = await Promise.all([startRedis(), startEcho('up'), startTestGateway({ config: { apisix: { data_encryption: { keyring: [KEY] } } } })]);
    const admin = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true, maxRetriesPerRequest: 0 });
    await admin.connect();
    await admin.config('SET', 'requirepass', PASSWORD);
    admin.disconnect();
  }, 60_000);
  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await redis?.stop();
  });

  it('declares redis_password and sentinel_password route-conf encrypt fields (consumer fields unchanged)', () => {
    const codec = fieldCodecFromConfig({}, lookupFromPluginDefs((n) => (n === def.name ? def : undefined)));
    const route = { plugins: { 'hmac-auth': { reject_replays: true, redis_password: 'p1', sentinel_password: 'p2', redis_host: 'h' } } };
    const stored = codec.encode('routes', route, '1');
    const conf = (stored.plugins as Record<string, Record<string, unknown>>)['hmac-auth']!;
    expect(conf.redis_host).toBe('h');
    expect(conf.redis_password).not.toBe('p1');
    expect(conf.sentinel_password).not.toBe('p2');
    expect(codec.decode('routes', stored, '1')).toEqual(route);
    const consumer = { plugins: { 'hmac-auth': { key_id: 'k', secret_key: 's' } } };
    expect(((codec.encode('consumers', consumer, 'c').plugins as Record<string, Record<string, unknown>>)['hmac-auth']!).secret_key).not.toBe('s');
  });

  it('is stored encrypted, authenticates to Redis, and Admin GET shows it decrypted as APISIX does', async () => {
    await gw.put('/consumers/jack', { username: 'jack', plugins: { 'hmac-auth': { key_id: jack.keyId, secret_key: jack.secret } } });
    const conf = { reject_replays: true, replay_policy: 'redis', redis_host: '127.0.0.1', redis_port: redis.port, redis_password: PASSWORD, redis_timeout: 1000 };
    await gw.put('/routes/h', { uri: '/h/*', plugins: { 'hmac-auth': conf }, upstream: { nodes: { [up.addr]: 1 } } });
    await gw.synced();

    const text = await readFile(path.join(gw.dir, 'apisix.yaml'), 'utf8');
    expect(text).toContain('redis_host: 127.0.0.1');
    expect(text).not.toContain(PASSWORD);
    const stored = /redis_password: (\S+)/.exec(text)?.[1];
    expect(stored).toBeDefined();
    expect(await opensslDecrypt(KEY, stored!)).toBe(PASSWORD);

    // The decrypted password reaches Redis (which now requires it): once accepted, then a replay.
    const h = signedHeaders({ ...jack, target: '/h/x' });
    let r = await fetch(`${gw.url}/h/x`, { headers: h });
    expect(r.status).toBe(200);
    await r.arrayBuffer();
    r = await fetch(`${gw.url}/h/x`, { headers: h });
    expect(r.status).toBe(401);
    await r.arrayBuffer();

    const got = await gw.admin('GET', '/routes/h');
    expect(got.status).toBe(200);
    const value = (got.body as { value: { plugins: Record<string, Record<string, unknown>> } }).value;
    expect(value.plugins['hmac-auth']!.redis_password).toBe(PASSWORD);
  });
});
