import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Json, JsonObject } from '../../src/config/resources.ts';
import { hasSecretRefs, isSecretRef, resolveSecretRefs, type SecretStore } from '../../src/plugin/secret-refs.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { curl } from '../helpers/curl.ts';

const env = (vars: Record<string, string>) => (name: string) => vars[name];
const noSecrets: SecretStore = { get: () => undefined };

describe('secret references in plugin confs', () => {
  it('recognises references as APISIX does', () => {
    expect(isSecretRef('$env://A')).toBe(true);
    expect(isSecretRef('$ENV://A')).toBe(true);
    expect(isSecretRef('$Env://A')).toBe(true);
    expect(isSecretRef('$secret://vault/1/k')).toBe(true);
    expect(isSecretRef('$SECRET://vault/1/k')).toBe(false);
    expect(isSecretRef('env://A')).toBe(false);
    expect(hasSecretRefs({ a: [1, { b: 'x' }] })).toBe(false);
    expect(hasSecretRefs({ a: [1, { b: '$env://X' }] })).toBe(true);
  });

  it('resolves $env references anywhere in the conf without touching the original', () => {
    // Frozen like snapshot values: resolution must copy, never write.
    const conf: JsonObject = Object.freeze({
      key: '$env://KEY',
      nested: Object.freeze({ list: Object.freeze(['plain', '$ENV://CREDS/user', '$env://CREDS/port']) as Json[] }),
      n: 3,
    });
    const out = resolveSecretRefs(conf, noSecrets, env({ KEY: 's3cr3t', CREDS: '{"user":"jack","port":8080}' }));
    expect(out).toEqual({ key: 's3cr3t', nested: { list: ['plain', 'jack', 8080] }, n: 3 });
    expect(conf.key).toBe('$env://KEY');
    const plain = { a: 'b' };
    expect(resolveSecretRefs(plain, noSecrets, env({}))).toBe(plain);
  });

  it('fails with the reference and field named, never the value', () => {
    expect(() => resolveSecretRefs({ a: { b: '$env://MISSING' } }, noSecrets, env({}))).toThrow(
      'failed to resolve secret reference $env://MISSING (field a.b): environment variable MISSING is not set',
    );
    let msg = '';
    try {
      resolveSecretRefs({ k: '$env://J/x' }, noSecrets, env({ J: 'hunter2-not-json' }));
    } catch (err) {
      msg = (err as Error).message;
    }
    expect(msg).toContain('is not JSON');
    expect(msg).not.toContain('hunter2');
    expect(() => resolveSecretRefs({ k: '$secret://vault' }, noSecrets)).toThrow('no secret manager');
    expect(() => resolveSecretRefs({ k: '$secret://vault/1' }, noSecrets)).toThrow('no secret conf id');
    expect(() => resolveSecretRefs({ k: '$secret://vault/1/' }, noSecrets)).toThrow('no secret key id');
    expect(() => resolveSecretRefs({ k: '$secret://vault/1/db/pass' }, noSecrets)).toThrow('no secret conf, secret_uri: $secret://vault/1/db/pass');
    const store: SecretStore = { get: (_k, id) => (id === 'vault/1' ? { value: { uri: 'http://127.0.0.1:1', prefix: 'kv', token: 't' } } : undefined) };
    expect(() => resolveSecretRefs({ k: '$secret://vault/1/db/pass' }, store)).toThrow('vault path db of vault/1 was not fetched');
    const aws: SecretStore = { get: (_k, id) => (id === 'aws/1' ? { value: { access_key_id: 'a', secret_access_key: 'b' } } : undefined) };
    expect(() => resolveSecretRefs({ k: '$secret://aws/1/db/pass' }, aws)).toThrow('secret manager aws is not available');
  });

  describe('through the gateway', () => {
    let gw: TestGateway;
    let up: EchoServer;
    const names = { key: `SWY_TEST_CSRF_KEY_${process.pid}`, json: `SWY_TEST_UA_${process.pid}` };

    beforeAll(async () => {
      process.env[names.key] = 'key-from-the-environment';
      process.env[names.json] = JSON.stringify({ message: 'blocked by env conf' });
      gw = await startTestGateway();
      up = await startEcho('content');
      const upstream = { nodes: { [up.addr]: 1 } };
      await gw.put('/routes/1', { uri: '/csrf', plugins: { csrf: { key: `$env://${names.key}` } }, upstream });
      await gw.put('/routes/2', {
        uri: '/ua',
        plugins: { 'ua-restriction': { denylist: ['bot'], message: `$ENV://${names.json}/message` } },
        upstream,
      });
      await gw.put('/routes/3', { uri: '/missing', plugins: { 'uri-blocker': { block_rules: ['x'], rejected_msg: '$env://SWY_TEST_NOT_SET_ANYWHERE' } }, upstream });
      await gw.put('/secrets/vault/1', { uri: 'http://127.0.0.1:1', prefix: 'kv/apisix', token: 'root' });
      await gw.put('/routes/4', { uri: '/vault', plugins: { csrf: { key: '$secret://vault/1/csrf/key' } }, upstream });
    });
    afterAll(async () => {
      delete process.env[names.key];
      delete process.env[names.json];
      await gw?.close();
      await up?.close();
    });

    it('an $env key signs csrf tokens (checked with sha256sum) and the stored conf keeps the reference', async () => {
      const r = await fetch(`${gw.url}/csrf`);
      expect(r.status).toBe(200);
      const token = /^apisix-csrf-token=([^;]+);/.exec(r.headers.get('set-cookie') ?? '')![1]!;
      const t = JSON.parse(Buffer.from(token, 'base64').toString()) as { random: number; expires: number; sign: string };
      const printf = (v: number) => execFileSync('printf', ['%.14g', String(v)], { encoding: 'utf8' });
      const signed = `{expires:${printf(t.expires)},random:${printf(t.random)},key:key-from-the-environment}`;
      expect(t.sign).toBe(execFileSync('sha256sum', { input: signed, encoding: 'utf8' }).split(' ')[0]);
      const ok = await curl(`${gw.url}/csrf`, ['-X', 'POST', '-H', `apisix-csrf-token: ${token}`, '-b', `apisix-csrf-token=${token}`]);
      expect(ok.status).toBe(200);
      const stored = await gw.admin('GET', '/routes/1');
      expect(stored.body.value.plugins.csrf.key).toBe(`$env://${names.key}`);
    });

    it('an $ENV://VAR/field reference reads a field of a JSON variable', async () => {
      const r = await curl(`${gw.url}/ua`, ['-A', 'a bot']);
      expect(r.status).toBe(403);
      expect(JSON.parse(r.body)).toEqual({ message: 'blocked by env conf' });
    });

    it('consumer and credential auth keys from $env references authenticate with their values, never the literal', async () => {
      const k1 = `SWY_TEST_CONSUMER_KEY_${process.pid}`;
      const k2 = `SWY_TEST_CREDENTIAL_KEY_${process.pid}`;
      process.env[k1] = 'consumer-key-from-env';
      process.env[k2] = 'credential-key-from-env';
      try {
        await gw.put('/consumers', { username: 'envjack', plugins: { 'key-auth': { key: `$env://${k1}` } } });
        await gw.put('/consumers', { username: 'envrose' });
        // (gw.put waits on the store by the path's first segment, which for a credential is not its kind.)
        expect((await gw.admin('PUT', '/consumers/envrose/credentials/c1', { plugins: { 'key-auth': { key: `$env://${k2}` } } })).status).toBe(201);
        await gw.put('/consumers', { username: 'envnobody', plugins: { 'key-auth': { key: '$env://SWY_TEST_NOT_SET_ANYWHERE' } } });
        await gw.put('/routes/5', { uri: '/auth', plugins: { 'key-auth': {} }, upstream: { nodes: { [up.addr]: 1 } } });
        const as = async (key: string) => {
          const r = await fetch(`${gw.url}/auth`, { headers: { apikey: key } });
          await r.arrayBuffer();
          return r.status;
        };
        expect(await as('consumer-key-from-env')).toBe(200);
        expect(await as('credential-key-from-env')).toBe(200);
        expect(await as(`$env://${k1}`)).toBe(401);
        expect(await as(`$env://${k2}`)).toBe(401);
        // An unresolvable reference authenticates nobody, least of all with its own text.
        expect(await as('$env://SWY_TEST_NOT_SET_ANYWHERE')).toBe(401);
        const seen = up.seen.at(-1)!;
        expect(seen.headers['x-consumer-username']).toBe('envrose');
      } finally {
        delete process.env[k1];
        delete process.env[k2];
      }
    });

    it('an unresolvable reference fails closed (500) instead of being used verbatim', async () => {
      const before = up.seen.length;
      expect((await fetch(`${gw.url}/missing`)).status).toBe(500);
      expect((await fetch(`${gw.url}/vault`, { method: 'POST' })).status).toBe(500);
      expect(up.seen.length).toBe(before);
    });
  });
});
