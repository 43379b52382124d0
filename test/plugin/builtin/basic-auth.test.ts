import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fieldCodecFromConfig, lookupFromPluginDefs } from '../../../src/config/encryption.ts';
import { basicAuthPlugin as def, parseBasicAuthorization } from '../../../src/plugin/builtin/basic-auth.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { h2Request, startWsUpstream, wsRoundTrip, type WsUpstream } from './auth-transports.ts';
import { confError } from '../helpers.ts';

type Echo = { headers: Record<string, string | undefined>; url: string };

// Built by hand rather than with the code under test.
const basic = (user: string, pass: string) => 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');

describe('basic-auth', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let wsUp: WsUpstream;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startEcho('a');
    wsUp = await startWsUpstream();
    await gw.put('/consumers/jack', { username: 'jack', plugins: { 'basic-auth': { username: 'jack', password: 'jack-pw' } } });
    await gw.put('/consumers/rose', { username: 'rose' });
    await gw.put('/consumers/rose/credentials/rose-basic', { plugins: { 'basic-auth': { username: 'rose-login', password: 'r:o!se' } } });
    await gw.put('/consumers/anon', { username: 'anon' });
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/1', { uri: '/ba/*', plugins: { 'basic-auth': {} }, upstream });
    await gw.put('/routes/2', { uri: '/hide/*', plugins: { 'basic-auth': { hide_credentials: true, realm: 'secure-zone' } }, upstream });
    await gw.put('/routes/3', { uri: '/anon/*', plugins: { 'basic-auth': { anonymous_consumer: 'anon' } }, upstream });
    await gw.put('/routes/4', { uri: '/ghost/*', plugins: { 'basic-auth': { anonymous_consumer: 'ghost' } }, upstream });
    await gw.put('/routes/ws', { uri: '/ws/*', enable_websocket: true, plugins: { 'basic-auth': {} }, upstream: { nodes: { [wsUp.addr]: 1 } } });
    await gw.synced();
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await wsUp?.close();
  });

  it('validates route and consumer confs like APISIX', async () => {
    expect(confError(def, {})).toBeNull();
    expect(confError(def, { realm: 'has "quote"' })).not.toBeNull();
    expect(confError(def, { realm: 'x'.repeat(129) })).not.toBeNull();
    expect(confError(def, { anonymous_consumer: '' })).not.toBeNull();
    const r = await gw.admin('PUT', '/consumers/bad', { username: 'bad', plugins: { 'basic-auth': { username: 'bad' } } });
    expect(r.status).toBe(400);
    expect(r.body).toEqual({
      error_msg: 'invalid plugins configuration: failed to check the configuration of plugin basic-auth err: property "password" is required',
    });
  });

  it('declares the password an encrypt_fields entry, so etcd holds it encrypted', () => {
    const codec = fieldCodecFromConfig({}, lookupFromPluginDefs((n) => (n === def.name ? def : undefined)));
    const value = { plugins: { 'basic-auth': { username: 'jack', password: 'jack-pw' } } };
    for (const kind of ['consumers', 'credentials'] as const) {
      const stored = codec.encode(kind, value, kind === 'credentials' ? 'jack/credentials/c1' : 'jack');
      const conf = (stored.plugins as Record<string, Record<string, string>>)['basic-auth']!;
      expect(conf.username).toBe('jack');
      expect(conf.password).not.toContain('jack-pw');
      expect(codec.decode(kind, stored)).toEqual(value);
    }
  });

  it('rejects missing, malformed and wrong credentials with APISIX bodies, never reaching the upstream', async () => {
    const before = up.seen.length;
    const cases: [Record<string, string>, string][] = [
      [{}, 'Missing authorization in request'],
      [{ authorization: 'Bad_header YmFyOmJhcgo=' }, 'Invalid authorization in request'],
      [{ authorization: 'Basic aca_a' }, 'Invalid authorization in request'],
      [{ authorization: 'Basic YmFy' }, 'Invalid authorization in request'],
      [{ authorization: 'Basic YmFyOmJhcgo=' }, 'Invalid user authorization'],
      [{ authorization: basic('jack', 'wrong') }, 'Invalid user authorization'],
      [{ authorization: basic('jack', 'jack-pw-longer') }, 'Invalid user authorization'],
      [{ authorization: basic('rose', 'r:o!se') }, 'Invalid user authorization'],
    ];
    for (const [headers, message] of cases) {
      const r = await fetch(`${gw.url}/ba/x`, { headers });
      expect(r.status, JSON.stringify(headers)).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('Basic realm="basic"');
      expect(await r.json()).toEqual({ message });
    }
    const r = await fetch(`${gw.url}/hide/x`);
    expect(r.headers.get('www-authenticate')).toBe('Basic realm="secure-zone"');
    await r.arrayBuffer();
    expect(up.seen.length).toBe(before);
  });

  it('authenticates a consumer and replaces client-supplied identity headers', async () => {
    for (const scheme of ['Basic', 'basic', 'bASiC']) {
      const auth = `${scheme} ${Buffer.from('jack:jack-pw').toString('base64')}`;
      const r = await fetch(`${gw.url}/ba/x`, {
        headers: { authorization: auth, 'x-consumer-username': 'admin', 'x-credential-identifier': 'forged', 'x-consumer-custom-id': 'forged' },
      });
      expect(r.status).toBe(200);
      const echo = (await r.json()) as Echo;
      expect(echo.headers['x-consumer-username']).toBe('jack');
      expect(echo.headers['x-credential-identifier']).toBeUndefined();
      expect(echo.headers['x-consumer-custom-id']).toBeUndefined();
      expect(echo.headers.authorization).toBe(auth);
    }
    // APISIX strips whitespace (e.g. the newline `echo` adds) from the decoded pair.
    const r = await fetch(`${gw.url}/ba/x`, { headers: { authorization: 'Basic ' + Buffer.from('jack:jack-pw\n').toString('base64') } });
    expect(r.status).toBe(200);
    await r.arrayBuffer();
  });

  it('authenticates with a credential and sends its id upstream', async () => {
    // The password holds a colon: everything after the first colon counts (RFC 7617); whitespace is dropped as in APISIX.
    const r = await fetch(`${gw.url}/ba/x`, { headers: { authorization: basic('rose-login', 'r:o !se') } });
    expect(r.status).toBe(200);
    const echo = (await r.json()) as Echo;
    expect(echo.headers['x-consumer-username']).toBe('rose');
    expect(echo.headers['x-credential-identifier']).toBe('rose-basic');
  });

  it('hide_credentials removes the Authorization header', async () => {
    const r = await fetch(`${gw.url}/hide/x`, { headers: { authorization: basic('jack', 'jack-pw') } });
    expect(r.status).toBe(200);
    const echo = (await r.json()) as Echo;
    expect(echo.headers.authorization).toBeUndefined();
    expect(echo.headers['x-consumer-username']).toBe('jack');
  });

  it('falls back to the anonymous consumer, or 401 when it does not exist', async () => {
    let r = await fetch(`${gw.url}/anon/x`, { headers: { 'x-consumer-username': 'jack' } });
    expect(r.status).toBe(200);
    expect(((await r.json()) as Echo).headers['x-consumer-username']).toBe('anon');
    r = await fetch(`${gw.url}/anon/x`, { headers: { authorization: basic('jack', 'jack-pw') } });
    expect(((await r.json()) as Echo).headers['x-consumer-username']).toBe('jack');
    const before = up.seen.length;
    r = await fetch(`${gw.url}/ghost/x`);
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toBe('Basic realm="basic"');
    expect(await r.json()).toEqual({ message: 'Invalid user authorization' });
    expect(up.seen.length).toBe(before);
  });

  it('parses Authorization values as nginx does', () => {
    expect(parseBasicAuthorization('Basic ' + Buffer.from('a:b').toString('base64'))).toEqual({ username: 'a', password: 'b' });
    // Padding is optional and anything after the first "=" is ignored (ngx.decode_base64).
    expect(parseBasicAuthorization('Basic YTpi')).toEqual({ username: 'a', password: 'b' });
    expect(parseBasicAuthorization('Basic YTpiYw==garbage')).toEqual({ username: 'a', password: 'bc' });
    expect(parseBasicAuthorization('Basic YTpiY')).toBeNull();
    expect(parseBasicAuthorization('Basic ' + Buffer.from('a:').toString('base64'))).toBeNull();
    expect(parseBasicAuthorization('Bearer abc')).toBeNull();
  });

  it('guards h2c requests and WebSocket upgrades the same way', async () => {
    let r = await h2Request(gw.url, { ':method': 'GET', ':path': '/ba/h2', authorization: basic('jack', 'jack-pw') });
    expect(r.status).toBe(200);
    expect((JSON.parse(r.body) as Echo).headers['x-consumer-username']).toBe('jack');
    r = await h2Request(gw.url, { ':method': 'GET', ':path': '/ba/h2' });
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Basic realm="basic"');
    expect(JSON.parse(r.body)).toEqual({ message: 'Missing authorization in request' });

    const wsUrl = `ws://127.0.0.1:${gw.port}/ws/x`;
    const before = wsUp.upgrades.length;
    const refused = await wsRoundTrip(wsUrl, { authorization: basic('jack', 'wrong') });
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expect(refused.status).toBe(401);
      expect(JSON.parse(refused.body)).toEqual({ message: 'Invalid user authorization' });
    }
    expect(wsUp.upgrades.length).toBe(before);
    const ok = await wsRoundTrip(wsUrl, { authorization: basic('jack', 'jack-pw'), 'x-consumer-username': 'forged' });
    expect(ok).toEqual({ ok: true, echo: 'echo:ping' });
    expect(wsUp.upgrades.at(-1)!['x-consumer-username']).toBe('jack');
  });
});
