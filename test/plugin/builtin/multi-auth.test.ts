import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { multiAuthPlugin as def } from '../../../src/plugin/builtin/multi-auth.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { confError } from '../helpers.ts';

const basic = (user: string, pw: string) => 'Basic ' + Buffer.from(`${user}:${pw}`).toString('base64');

describe('multi-auth', () => {
  let gw: TestGateway;
  let up: EchoServer;
  const jwtSecret = 'jwt-secret-0123456789-abcdefghij';

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startEcho('a');
    await gw.put('/consumers/jack', { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } });
    await gw.put('/consumers/rose', { username: 'rose', plugins: { 'basic-auth': { username: 'rose', password: 'rose-pw' } } });
    await gw.put('/consumers/tom', { username: 'tom', plugins: { 'jwt-auth': { key: 'tom-key', secret: jwtSecret } } });
    await gw.put('/routes/1', {
      uri: '/m/*',
      plugins: {
        'multi-auth': {
          auth_plugins: [{ 'basic-auth': {} }, { 'key-auth': { hide_credentials: true } }, { 'jwt-auth': {} }],
        },
      },
      upstream: { nodes: { [up.addr]: 1 } },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  it('validates every entry against the named plugin, with APISIX messages', async () => {
    expect(confError(def, {})).toContain('property "auth_plugins" is required');
    expect(confError(def, { auth_plugins: [{ 'key-auth': {} }] })).toContain('expect array to have at least 2 items');
    expect(confError(def, { auth_plugins: [{ 'key-auth': {} }, { 'basic-auth': 'blah' }] })).toBe(
      'failed to check the configuration of plugin multi-auth err: plugin basic-auth check schema failed: wrong type: expected object, got string',
    );
    expect(confError(def, { auth_plugins: [{ 'key-auth': {} }, { 'basic-auth': { hide_credentials: 'yes' } }] })).toBe(
      'failed to check the configuration of plugin multi-auth err: plugin basic-auth check schema failed: property "hide_credentials" validation failed: wrong type: expected boolean, got string',
    );
    expect(confError(def, { auth_plugins: [{ 'key-auth': {} }, { 'cors': {} }] })).toContain('cors plugin did not found');
    const r = await gw.admin('PUT', '/routes/bad', {
      uri: '/bad',
      plugins: { 'multi-auth': { auth_plugins: [{ 'key-auth': {} }, { 'jwt-auth': { header: 1 } }] } },
      upstream: { nodes: { [up.addr]: 1 } },
    });
    expect(r.status).toBe(400);
    expect(r.body.error_msg).toBe(
      'failed to check the configuration of plugin multi-auth err: plugin jwt-auth check schema failed: property "header" validation failed: wrong type: expected string, got number',
    );
  });

  it('the first plugin that authenticates wins', async () => {
    let r = await fetch(`${gw.url}/m/x`, { headers: { authorization: basic('rose', 'rose-pw') } });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { headers: Record<string, string> }).headers['x-consumer-username']).toBe('rose');

    r = await fetch(`${gw.url}/m/x`, { headers: { apikey: 'jack-key' } });
    expect(r.status).toBe(200);
    const echo = (await r.json()) as { headers: Record<string, string> };
    expect(echo.headers['x-consumer-username']).toBe('jack');
    // key-auth's own hide_credentials applies inside multi-auth
    expect(echo.headers.apikey).toBeUndefined();

    const token = await new SignJWT({ key: 'tom-key' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(jwtSecret));
    r = await fetch(`${gw.url}/m/x`, { headers: { authorization: `Bearer ${token}` } });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { headers: Record<string, string> }).headers['x-consumer-username']).toBe('tom');
  });

  it('all failing: 401 Authorization Failed', async () => {
    const before = up.seen.length;
    for (const headers of [{}, { apikey: 'nope' }, { authorization: basic('rose', 'wrong') }, { authorization: 'Bearer a.b.c' }]) {
      const r = await fetch(`${gw.url}/m/x`, { headers });
      expect(r.status).toBe(401);
      expect(await r.text()).toBe('{"message":"Authorization Failed"}\n');
    }
    expect(up.seen.length).toBe(before);
  });
});
