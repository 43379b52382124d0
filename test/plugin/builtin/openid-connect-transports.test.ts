// openid-connect over h2c, HTTP/2 over TLS and on WebSocket upgrades against a real OpenID provider (npm
// oidc-provider): bearer-only (JWKS and introspection) gives the same answers as over HTTP/1.1 and a refused
// upgrade never reaches the upstream; the browser login flow works with the gateway spoken to over h2c and
// over h2 on the HTTPS listener.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { ACCOUNT, startOp, type TestOp } from '../../helpers/oidc-provider.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { gatewayTls, h2Request, startWsUpstream, wsRoundTrip, type GatewayTls, type WsUpstream } from './auth-transports.ts';

type Echo = { headers: Record<string, string | undefined> };
const SESSION_SECRET = 'session-secret-0123456789abcdef';
const fromB64 = (v: string) => JSON.parse(Buffer.from(v, 'base64').toString()) as Record<string, unknown>;

/** Cookies of one origin, as a browser keeps them (expired or emptied ones dropped). */
function keepCookies(jar: Map<string, string>, setCookie: readonly string[]): void {
  for (const c of setCookie) {
    const [kv, ...attrs] = c.split(';');
    const eq = kv!.indexOf('=');
    const name = kv!.slice(0, eq).trim();
    const value = kv!.slice(eq + 1);
    const expired = attrs.some((a) => /^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]!) <= Date.now());
    if (value === '' || expired) jar.delete(name);
    else jar.set(name, value);
  }
}
const cookieHeader = (jar: Map<string, string>) => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
const setCookies = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

describe('openid-connect over h2c, h2 over TLS and WebSocket upgrades', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let wsUp: WsUpstream;
  let op: TestOp;
  let tls: GatewayTls;

  beforeAll(async () => {
    [gw, up, wsUp] = await Promise.all([startTestGateway(), startEcho('a'), startWsUpstream()]);
    tls = await gatewayTls(gw);
    // The browser route has no redirect_uri: APISIX derives <request path>/.apisix/redirect on the request's
    // scheme and authority.
    op = await startOp([`${gw.url}/app/page/.apisix/redirect`, `https://${tls.host}:${gw.httpsPort}/app/page/.apisix/redirect`]);
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
    await gw.put('/routes/app', {
      uri: '/app/*',
      plugins: { 'openid-connect': { ...base, bearer_only: false, scope: 'openid email profile', session: { secret: SESSION_SECRET } } },
      upstream,
    });
    await gw.put('/routes/appws', {
      uri: '/appws/*',
      enable_websocket: true,
      plugins: { 'openid-connect': { ...base, bearer_only: false, session: { secret: SESSION_SECRET } } },
      upstream: wsUpstream,
    });
    await gw.put('/routes/ws-intro', { uri: '/wsi/*', enable_websocket: true, plugins: { 'openid-connect': base }, upstream: wsUpstream });
  }, 30_000);
  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await wsUp?.close();
    await op?.close();
    await tls?.cleanup();
  });

  const h2tls = (path: string, headers: Record<string, string> = {}) =>
    h2Request(tls.origin, { ':method': 'GET', ':path': path, ':authority': `${tls.host}:${gw.httpsPort}`, ...headers }, undefined, tls.tls);

  it('h2 over TLS: a JWT from the OP is accepted, a tampered one and an unknown opaque one are 401', async () => {
    const token = await op.clientCredentials();
    let r = await h2tls('/jwks/h2tls', { authorization: `Bearer ${token}`, 'x-access-token': 'forged' });
    expect(r.alpn).toBe('h2');
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.body) as Echo;
    expect(echo.headers['x-access-token']).toBe(token);
    expect(fromB64(echo.headers['x-userinfo']!).iss).toBe(op.issuer);
    const seen = up.seen.length;
    const [h, p, s] = token.split('.');
    r = await h2tls('/jwks/h2tls', { authorization: `Bearer ${h}.${p}.${s!.slice(0, -4)}${s!.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}` });
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toMatch(/^Bearer realm="apisix", error="invalid_token", error_description="/);
    r = await h2tls('/intro/h2tls', { authorization: 'Bearer not-a-token-the-op-issued' });
    expect(r.status).toBe(401);
    expect(up.seen.length).toBe(seen);
    const opaque = await op.clientCredentials({ resource: false });
    r = await h2tls('/intro/h2tls', { authorization: `Bearer ${opaque}` });
    expect(r.status).toBe(200);
    expect(fromB64((JSON.parse(r.body) as Echo).headers['x-userinfo']!).active).toBe(true);
  });

  it('h2 over TLS: the browser login flow, with an https redirect_uri on the :authority and a Secure session cookie', async () => {
    const gwJar = new Map<string, string>();
    const opJar = new Map<string, string>();
    let r = await h2tls('/app/page?x=2');
    expect(r.alpn).toBe('h2');
    expect(r.status).toBe(302);
    const pending = setCookies(r.headers['set-cookie']);
    expect(pending.find((c) => c.startsWith('session='))).toMatch(/; Secure/i);
    keepCookies(gwJar, pending);
    let url = new URL(String(r.headers.location));
    expect(url.origin).toBe(op.issuer);
    expect(url.searchParams.get('redirect_uri')).toBe(`https://${tls.host}:${gw.httpsPort}/app/page/.apisix/redirect`);
    for (let hops = 0; url.origin === op.issuer; hops++) {
      expect(hops).toBeLessThan(12);
      const res = await fetch(url, { redirect: 'manual', headers: { cookie: cookieHeader(opJar) } });
      keepCookies(opJar, res.headers.getSetCookie());
      await res.arrayBuffer();
      expect(res.status).toBeGreaterThanOrEqual(300);
      url = new URL(res.headers.get('location')!, url);
    }
    expect(url.origin).toBe(`https://${tls.host}:${gw.httpsPort}`);
    r = await h2tls(url.pathname + url.search, { cookie: cookieHeader(gwJar) });
    expect(r.status).toBe(302);
    expect(r.headers.location).toBe('/app/page?x=2');
    keepCookies(gwJar, setCookies(r.headers['set-cookie']));
    r = await h2tls('/app/page?x=2', { cookie: cookieHeader(gwJar) });
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.body) as Echo;
    expect(fromB64(echo.headers['x-userinfo']!).email).toBe(ACCOUNT.email);
    expect(fromB64(echo.headers['x-id-token']!).sub).toBe(ACCOUNT.sub);
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

  it('h2c: the browser login flow (gateway over h2c, OP over HTTP/1.1) with the default redirect_uri on the h2 authority; the session then opens a WebSocket', async () => {
    const gwJar = new Map<string, string>();
    const opJar = new Map<string, string>();
    let r = await h2Request(gw.url, { ':method': 'GET', ':path': '/app/page?x=1' });
    expect(r.status).toBe(302);
    keepCookies(gwJar, setCookies(r.headers['set-cookie']));
    let url = new URL(String(r.headers.location));
    expect(url.origin).toBe(op.issuer);
    // The :authority keeps the port, as nginx's $http_host does for HTTP/2 requests.
    expect(url.searchParams.get('redirect_uri')).toBe(`${gw.url}/app/page/.apisix/redirect`);
    for (let hops = 0; url.origin === op.issuer; hops++) {
      expect(hops).toBeLessThan(12);
      const res = await fetch(url, { redirect: 'manual', headers: { cookie: cookieHeader(opJar) } });
      keepCookies(opJar, res.headers.getSetCookie());
      await res.arrayBuffer();
      expect(res.status).toBeGreaterThanOrEqual(300);
      url = new URL(res.headers.get('location')!, url);
    }
    expect(url.pathname).toBe('/app/page/.apisix/redirect');
    r = await h2Request(gw.url, { ':method': 'GET', ':path': url.pathname + url.search, cookie: cookieHeader(gwJar) });
    expect(r.status).toBe(302);
    expect(r.headers.location).toBe('/app/page?x=1');
    keepCookies(gwJar, setCookies(r.headers['set-cookie']));
    r = await h2Request(gw.url, { ':method': 'GET', ':path': '/app/page?x=1', cookie: cookieHeader(gwJar), 'x-userinfo': 'forged' });
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.body) as Echo;
    expect(fromB64(echo.headers['x-userinfo']!).email).toBe(ACCOUNT.email);
    expect(fromB64(echo.headers['x-id-token']!).sub).toBe(ACCOUNT.sub);

    // A browser's WebSocket carries the session cookie: the upgrade is authenticated by the session; without it the
    // handshake gets the login redirect and the upstream never sees it.
    const before = wsUp.upgrades.length;
    const refused = await wsRoundTrip(`ws://127.0.0.1:${gw.port}/appws/x`, {});
    expect(refused.ok === false && refused.status).toBe(302);
    expect(wsUp.upgrades.length).toBe(before);
    const ok = await wsRoundTrip(`ws://127.0.0.1:${gw.port}/appws/x`, { cookie: cookieHeader(gwJar) });
    expect(ok).toEqual({ ok: true, echo: 'echo:ping' });
    expect(fromB64(String(wsUp.upgrades.at(-1)!['x-userinfo'])).email).toBe(ACCOUNT.email);
  });
});
