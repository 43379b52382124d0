import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyAuthPlugin as def, removeQueryArg } from '../../../src/plugin/builtin/key-auth.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { silentLogger } from '../../../src/observability/logger.ts';
import { confError, fakeContext } from '../helpers.ts';
import { h2Request, startWsUpstream, wsRoundTrip, type WsUpstream } from './auth-transports.ts';

describe('key-auth', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let wsUp: WsUpstream;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startEcho('a');
    wsUp = await startWsUpstream();
    await gw.put('/consumers/jack', { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } });
    await gw.put('/consumers/rose', { username: 'rose', plugins: { 'key-auth': { key: 'rose-key' } } });
    await gw.put('/consumers/anon', { username: 'anon' });
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/1', { uri: '/ka/*', plugins: { 'key-auth': {} }, upstream });
    await gw.put('/routes/2', { uri: '/hide/*', plugins: { 'key-auth': { hide_credentials: true, header: 'X-Key', query: 'k' } }, upstream });
    await gw.put('/routes/3', { uri: '/anon/*', plugins: { 'key-auth': { anonymous_consumer: 'anon' } }, upstream });
    await gw.put('/routes/4', { uri: '/ghost/*', plugins: { 'key-auth': { anonymous_consumer: 'ghost' } }, upstream });
    await gw.put('/routes/ws', { uri: '/ws/*', enable_websocket: true, plugins: { 'key-auth': { hide_credentials: true } }, upstream: { nodes: { [wsUp.addr]: 1 } } });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await wsUp?.close();
  });

  it('validates route and consumer confs', () => {
    expect(confError(def, {})).toBeNull();
    expect(confError(def, { hide_credentials: 'yes' })).not.toBeNull();
    expect(confError(def, { anonymous_consumer: '' })).not.toBeNull();
  });

  it('answers 401 with APISIX bodies when the key is missing or wrong', async () => {
    let r = await fetch(`${gw.url}/ka/x`);
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toBe('apikey realm="key"');
    expect(await r.json()).toEqual({ message: 'Missing API key in request' });
    r = await fetch(`${gw.url}/ka/x`, { headers: { apikey: 'nope' } });
    expect(r.status).toBe(401);
    expect(await r.json()).toEqual({ message: 'Invalid API key in request' });
    expect(up.seen.length).toBe(0);
  });

  it('identifies the consumer by header or query and replaces identity headers', async () => {
    let r = await fetch(`${gw.url}/ka/x`, {
      headers: { apikey: 'jack-key', 'x-consumer-username': 'admin', 'x-consumer-custom-id': 'forged' },
    });
    expect(r.status).toBe(200);
    let echo = (await r.json()) as { headers: Record<string, string> };
    expect(echo.headers['x-consumer-username']).toBe('jack');
    expect(echo.headers['x-consumer-custom-id']).toBeUndefined();
    expect(echo.headers['x-credential-identifier']).toBeUndefined();
    expect(echo.headers.apikey).toBe('jack-key');

    r = await fetch(`${gw.url}/ka/x?apikey=rose-key&a=1`);
    expect(r.status).toBe(200);
    echo = (await r.json()) as { headers: Record<string, string>; url?: string };
    expect(echo.headers['x-consumer-username']).toBe('rose');
  });

  it('sends the credential id of a consumer identified by one of its credentials', () => {
    const consumer = { username: 'rose', credentialId: 'cred-1' };
    const consumers = {
      find: (p: string, f: string, v: string) => (p === 'key-auth' && f === 'key' && v === 'rose-key' ? { consumer, conf: { key: 'rose-key' } } : undefined),
      withPlugin: () => [],
    };
    const inst = def.create({ header: 'apikey', query: 'apikey' }, { logger: silentLogger, metadata: undefined, attr: undefined, scopeKey: 't', consumers });
    const ctx = fakeContext({ headers: { apikey: 'rose-key', 'x-credential-identifier': 'forged' } });
    expect(inst.rewrite!(ctx)).toBeUndefined();
    expect(ctx.consumer).toBe(consumer);
    expect(ctx.request.headers['x-credential-identifier']).toBe('cred-1');
    expect(ctx.request.headers['x-consumer-username']).toBe('rose');
  });

  it('hide_credentials removes the header or the query argument', async () => {
    let r = await fetch(`${gw.url}/hide/x`, { headers: { 'x-key': 'jack-key' } });
    expect(r.status).toBe(200);
    let echo = (await r.json()) as { headers: Record<string, string>; url: string };
    expect(echo.headers['x-key']).toBeUndefined();
    r = await fetch(`${gw.url}/hide/x?a=1&k=rose-key&b=2`);
    expect(r.status).toBe(200);
    echo = (await r.json()) as { headers: Record<string, string>; url: string };
    expect(echo.url).toBe('/hide/x?a=1&b=2');
  });

  it('falls back to the anonymous consumer, or 401 when it does not exist', async () => {
    let r = await fetch(`${gw.url}/anon/x`);
    expect(r.status).toBe(200);
    const echo = (await r.json()) as { headers: Record<string, string> };
    expect(echo.headers['x-consumer-username']).toBe('anon');
    r = await fetch(`${gw.url}/anon/x`, { headers: { apikey: 'jack-key' } });
    expect(((await r.json()) as { headers: Record<string, string> }).headers['x-consumer-username']).toBe('jack');
    r = await fetch(`${gw.url}/ghost/x`);
    expect(r.status).toBe(401);
    expect(await r.json()).toEqual({ message: 'Invalid user authorization' });
  });

  it('removes every occurrence of a query argument, keeping the others verbatim', () => {
    expect(removeQueryArg('a=1&apikey=x&b=%20&apikey=y', 'apikey')).toBe('a=1&b=%20');
    expect(removeQueryArg('', 'apikey')).toBe('');
  });
  it('guards h2c requests and WebSocket upgrades the same way', async () => {
    let r = await h2Request(gw.url, { ':method': 'GET', ':path': '/ka/h2', apikey: 'jack-key', 'x-consumer-username': 'forged' });
    expect(r.status).toBe(200);
    expect((JSON.parse(r.body) as { headers: Record<string, string> }).headers['x-consumer-username']).toBe('jack');
    const seen = up.seen.length;
    r = await h2Request(gw.url, { ':method': 'GET', ':path': '/ka/h2' });
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('apikey realm="key"');
    expect(JSON.parse(r.body)).toEqual({ message: 'Missing API key in request' });
    r = await h2Request(gw.url, { ':method': 'GET', ':path': '/ka/h2?apikey=nope' });
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body)).toEqual({ message: 'Invalid API key in request' });
    expect(up.seen.length).toBe(seen);

    const wsUrl = `ws://127.0.0.1:${gw.port}/ws/x`;
    const before = wsUp.upgrades.length;
    for (const [headers, message] of [
      [{}, 'Missing API key in request'],
      [{ apikey: 'nope' }, 'Invalid API key in request'],
    ] as [Record<string, string>, string][]) {
      const refused = await wsRoundTrip(wsUrl, headers);
      expect(refused.ok).toBe(false);
      if (!refused.ok) {
        expect(refused.status).toBe(401);
        expect(JSON.parse(refused.body)).toEqual({ message });
      }
    }
    expect(wsUp.upgrades.length).toBe(before);
    const ok = await wsRoundTrip(wsUrl, { apikey: 'rose-key', 'x-consumer-username': 'forged' });
    expect(ok).toEqual({ ok: true, echo: 'echo:ping' });
    const upgrade = wsUp.upgrades.at(-1)!;
    expect(upgrade['x-consumer-username']).toBe('rose');
    // hide_credentials on the upgrade too
    expect(upgrade.apikey).toBeUndefined();
    // the key in the query string of the upgrade request
    expect(await wsRoundTrip(`${wsUrl}?apikey=jack-key`, {})).toEqual({ ok: true, echo: 'echo:ping' });
    expect(wsUp.upgrades.at(-1)!['x-consumer-username']).toBe('jack');
  });
});
