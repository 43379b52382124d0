// openid-connect in bearer-only mode over h2c and on WebSocket upgrades, with tokens issued by a real OpenID
// provider (npm oidc-provider): the same checks as over HTTP/1.1, and a refused upgrade never reaches the upstream.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startOp, type TestOp } from '../../helpers/oidc-provider.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { h2Request, startWsUpstream, wsRoundTrip, type WsUpstream } from './auth-transports.ts';

type Echo = { headers: Record<string, string | undefined> };
const fromB64 = (v: string) => JSON.parse(Buffer.from(v, 'base64').toString()) as Record<string, unknown>;

describe('openid-connect (bearer_only) over h2c and WebSocket upgrades', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let wsUp: WsUpstream;
  let op: TestOp;

  beforeAll(async () => {
    [gw, up, wsUp, op] = await Promise.all([startTestGateway(), startEcho('a'), startWsUpstream(), startOp(['http://127.0.0.1/unused-callback'])]);
    const base = { client_id: op.clientId, client_secret: op.clientSecret, discovery: op.discovery, bearer_only: true };
    const upstream = { nodes: { [up.addr]: 1 } };
    const wsUpstream = { nodes: { [wsUp.addr]: 1 } };
    await gw.put('/routes/jwks', { uri: '/jwks/*', plugins: { 'openid-connect': { ...base, use_jwks: true } }, upstream });
    await gw.put('/routes/scoped', {
      uri: '/scoped/*',
      plugins: { 'openid-connect': { ...base, use_jwks: true, required_scopes: ['write'] } },
      upstream,
    });
    await gw.put('/routes/intro', { uri: '/intro/*', plugins: { 'openid-connect': base }, upstream });
    await gw.put('/routes/ws', { uri: '/ws/*', enable_websocket: true, plugins: { 'openid-connect': { ...base, use_jwks: true } }, upstream: wsUpstream });
    await gw.put('/routes/ws-intro', { uri: '/wsi/*', enable_websocket: true, plugins: { 'openid-connect': base }, upstream: wsUpstream });
  }, 30_000);
  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await wsUp?.close();
    await op?.close();
  });

  it('h2c: a JWT from the OP is verified with the JWKS and its claims go upstream; forged headers are replaced', async () => {
    const token = await op.clientCredentials();
    const r = await h2Request(gw.url, { ':method': 'GET', ':path': '/jwks/h2', authorization: `Bearer ${token}`, 'x-userinfo': 'forged' });
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.body) as Echo;
    expect(echo.headers['x-access-token']).toBe(token);
    const info = fromB64(echo.headers['x-userinfo']!);
    expect(info.client_id).toBe(op.clientId);
    expect(info.iss).toBe(op.issuer);
  });

  it('h2c: missing, tampered and opaque tokens are 401, a missing scope is 403, none reaches the upstream', async () => {
    const seen = up.seen.length;
    let r = await h2Request(gw.url, { ':method': 'GET', ':path': '/jwks/h2' });
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Bearer realm="apisix"');

    const token = await op.clientCredentials();
    const [h, p, s] = token.split('.');
    const tampered = `${h}.${p}.${s!.slice(0, -4)}${s!.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
    r = await h2Request(gw.url, { ':method': 'GET', ':path': '/jwks/h2', authorization: `Bearer ${tampered}` });
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toMatch(/^Bearer realm="apisix", error="invalid_token", error_description="/);

    const opaque = await op.clientCredentials({ resource: false });
    r = await h2Request(gw.url, { ':method': 'GET', ':path': '/jwks/h2', authorization: `Bearer ${opaque}` });
    expect(r.status).toBe(401);

    r = await h2Request(gw.url, { ':method': 'GET', ':path': '/scoped/h2', authorization: `Bearer ${token}` });
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toEqual({ error: 'required scopes write not present' });
    expect(up.seen.length).toBe(seen);
  });

  it('h2c: an opaque token is checked by the OP introspection endpoint', async () => {
    const opaque = await op.clientCredentials({ resource: false });
    let r = await h2Request(gw.url, { ':method': 'GET', ':path': '/intro/h2', authorization: `Bearer ${opaque}` });
    expect(r.status).toBe(200);
    const info = fromB64((JSON.parse(r.body) as Echo).headers['x-userinfo']!);
    expect(info.active).toBe(true);
    expect(info.client_id).toBe(op.clientId);
    r = await h2Request(gw.url, { ':method': 'GET', ':path': '/intro/h2', authorization: 'Bearer not-a-token-the-op-issued' });
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toContain('error="invalid_token"');
  });

  it('WebSocket: refused upgrades (no token, bad token, unknown opaque token) never reach the upstream', async () => {
    const before = wsUp.upgrades.length;
    const token = await op.clientCredentials();
    for (const [path, headers, status] of [
      ['/ws/x', {}, 401],
      ['/ws/x', { authorization: `Bearer ${token.slice(0, -6)}AAAAAA` }, 401],
      // An Authorization value without a space is malformed: APISIX answers 400.
      ['/ws/x', { authorization: 'Bearer' }, 400],
      ['/wsi/x', { authorization: 'Bearer not-a-token-the-op-issued' }, 401],
    ] as [string, Record<string, string>, number][]) {
      const res = await wsRoundTrip(`ws://127.0.0.1:${gw.port}${path}`, headers);
      expect(res.ok, `${path} ${JSON.stringify(headers)}`).toBe(false);
      if (!res.ok) expect(res.status).toBe(status);
    }
    expect(wsUp.upgrades.length).toBe(before);
  });

  it('WebSocket: a valid JWT or introspected token opens the tunnel with the identity headers upstream', async () => {
    const token = await op.clientCredentials();
    let res = await wsRoundTrip(`ws://127.0.0.1:${gw.port}/ws/x`, { authorization: `Bearer ${token}`, 'x-userinfo': 'forged' });
    expect(res).toEqual({ ok: true, echo: 'echo:ping' });
    let seen = wsUp.upgrades.at(-1)!;
    expect(seen['x-access-token']).toBe(token);
    expect(fromB64(String(seen['x-userinfo'])).client_id).toBe(op.clientId);

    // The browser WebSocket API cannot set Authorization: X-Access-Token is the other way to present the token.
    res = await wsRoundTrip(`ws://127.0.0.1:${gw.port}/ws/x`, { 'x-access-token': token });
    expect(res).toEqual({ ok: true, echo: 'echo:ping' });

    const opaque = await op.clientCredentials({ resource: false });
    res = await wsRoundTrip(`ws://127.0.0.1:${gw.port}/wsi/x`, { authorization: `Bearer ${opaque}` });
    expect(res).toEqual({ ok: true, echo: 'echo:ping' });
    seen = wsUp.upgrades.at(-1)!;
    expect(fromB64(String(seen['x-userinfo'])).active).toBe(true);
  });
});
