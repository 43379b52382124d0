// `$secret://vault/...` references against a small HTTP receiver speaking the Vault KV v2 read API
// (test/helpers/vault-kv.ts; no real Vault runs here): values fetched before the swap, cached, re-read when the
// secrets object changes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { curl } from '../helpers/curl.ts';
import { startVaultKv, type VaultKv } from '../helpers/vault-kv.ts';

describe('$secret://vault references through the gateway', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let kv: VaultKv;

  beforeAll(async () => {
    kv = await startVaultKv();
    gw = await startTestGateway();
    up = await startEcho('vault');
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await kv?.close();
  });

  const blocked = async () => {
    const r = await curl(`${gw.url}/ua`, ['-A', 'a bot']);
    return { status: r.status, body: r.body };
  };

  it('resolves a KV v2 value before the route serves, then keeps it cached until the secret changes', async () => {
    kv.tokens.add('tok-1');
    kv.data.set('apisix/jack', { msg: 'first value' });
    await gw.put('/secrets/vault/1', { uri: kv.url, prefix: 'kv/data/apisix', token: 'tok-1', namespace: 'team-a' });
    await gw.put('/routes/1', {
      uri: '/ua',
      plugins: { 'ua-restriction': { denylist: ['bot'], message: '$secret://vault/1/jack/msg' } },
      upstream: { nodes: { [up.addr]: 1 } },
    });
    const first = await blocked();
    expect(first.status).toBe(403);
    expect(JSON.parse(first.body)).toEqual({ message: 'first value' });
    expect(kv.seen).toEqual([{ url: '/v1/kv/data/apisix/jack', token: 'tok-1', namespace: 'team-a' }]);

    // Vault changes, the configuration does not: the fetched value stays, and requests never reach Vault.
    kv.data.set('apisix/jack', { msg: 'second value' });
    for (let i = 0; i < 3; i++) expect(JSON.parse((await blocked()).body)).toEqual({ message: 'first value' });
    expect(kv.seen.length).toBe(1);
    // Another route's write rebuilds the runtime but neither refetches nor rebuilds the secret's chain.
    await gw.put('/routes/2', { uri: '/other', upstream: { nodes: { [up.addr]: 1 } } });
    expect(JSON.parse((await blocked()).body)).toEqual({ message: 'first value' });
    expect(kv.seen.length).toBe(1);

    // A change of the secrets object (a rotated token) re-reads Vault and rebuilds the route's chain,
    // though the route itself did not change.
    kv.tokens.add('tok-2');
    await gw.put('/secrets/vault/1', { uri: kv.url, prefix: 'kv/data/apisix', token: 'tok-2', namespace: 'team-a' });
    expect(JSON.parse((await blocked()).body)).toEqual({ message: 'second value' });
    expect(kv.seen.at(-1)).toEqual({ url: '/v1/kv/data/apisix/jack', token: 'tok-2', namespace: 'team-a' });
    const stored = await gw.admin('GET', '/routes/1');
    expect(stored.body.value.plugins['ua-restriction'].message).toBe('$secret://vault/1/jack/msg');
  });

  it('fails closed (500, upstream never reached) when Vault refuses the token or lacks the field', async () => {
    await gw.put('/secrets/vault/1', { uri: kv.url, prefix: 'kv/data/apisix', token: 'revoked' });
    const before = up.seen.length;
    expect((await blocked()).status).toBe(500);
    expect((await curl(`${gw.url}/ua`)).status).toBe(500);
    await gw.put('/secrets/vault/1', { uri: kv.url, prefix: 'kv/data/apisix', token: 'tok-2' });
    await gw.put('/routes/1', {
      uri: '/ua',
      plugins: { 'ua-restriction': { denylist: ['bot'], message: '$secret://vault/1/jack/nope' } },
      upstream: { nodes: { [up.addr]: 1 } },
    });
    expect((await curl(`${gw.url}/ua`)).status).toBe(500);
    expect(up.seen.length).toBe(before);
    // The field present again: the route serves (a passing client reaches the upstream).
    await gw.put('/routes/1', {
      uri: '/ua',
      plugins: { 'ua-restriction': { denylist: ['bot'], message: '$secret://vault/1/jack/msg' } },
      upstream: { nodes: { [up.addr]: 1 } },
    });
    expect((await curl(`${gw.url}/ua`)).status).toBe(200);
    expect(up.seen.length).toBe(before + 1);
  });

  it('reads the token from an $env reference, as APISIX', async () => {
    const name = `SWY_TEST_VAULT_TOKEN_${process.pid}`;
    process.env[name] = 'tok-env';
    kv.tokens.add('tok-env');
    kv.data.set('apisix/jack', { msg: 'via env token' });
    try {
      await gw.put('/secrets/vault/1', { uri: kv.url, prefix: 'kv/data/apisix', token: `$env://${name}` });
      expect(JSON.parse((await blocked()).body)).toEqual({ message: 'via env token' });
      expect(kv.seen.at(-1)!.token).toBe('tok-env');
    } finally {
      delete process.env[name];
    }
  });

  it('a consumer key-auth key kept in Vault authenticates with its value, re-read when the secrets object changes', async () => {
    kv.tokens.add('tok-c');
    kv.data.set('apisix/consumers', { jack: 'vault-key-1' });
    await gw.put('/secrets/vault/2', { uri: kv.url, prefix: 'kv/data/apisix', token: 'tok-c' });
    await gw.put('/consumers', { username: 'jack', plugins: { 'key-auth': { key: '$secret://vault/2/consumers/jack' } } });
    await gw.put('/routes/3', { uri: '/auth', plugins: { 'key-auth': {} }, upstream: { nodes: { [up.addr]: 1 } } });
    const as = async (key: string) => (await curl(`${gw.url}/auth`, ['-H', `apikey: ${key}`])).status;
    expect(await as('vault-key-1')).toBe(200);
    expect(await as('$secret://vault/2/consumers/jack')).toBe(401);
    // Rotated in Vault, then the secrets object changes (a new token): the new key authenticates, the old not.
    kv.data.set('apisix/consumers', { jack: 'vault-key-2' });
    kv.tokens.add('tok-c2');
    await gw.put('/secrets/vault/2', { uri: kv.url, prefix: 'kv/data/apisix', token: 'tok-c2' });
    expect(await as('vault-key-2')).toBe(200);
    expect(await as('vault-key-1')).toBe(401);
    const stored = await gw.admin('GET', '/consumers/jack');
    expect(stored.body.value.plugins['key-auth'].key).toBe('$secret://vault/2/consumers/jack');
  });
});
