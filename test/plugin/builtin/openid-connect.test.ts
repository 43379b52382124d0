import { decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openidConnectPlugin as def } from '../../../src/plugin/builtin/openid-connect.ts';
import { SessionCodec } from '../../../src/plugin/builtin/openid-connect/session.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { ACCOUNT, startOp, type TestOp } from '../../helpers/oidc-provider.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { confError } from '../helpers.ts';
import { Browser } from './openid-connect-browser.ts';

type Echo = { headers: Record<string, string> };
const SESSION_SECRET = 'session-secret-0123456789abcdef';
const fromB64 = (v: string) => JSON.parse(Buffer.from(v, 'base64').toString()) as Record<string, unknown>;

describe('openid-connect against a real OpenID provider (oidc-provider)', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let op: TestOp;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startEcho('a');
    op = await startOp([`${gw.url}/app/callback`], [`${gw.url}/bye`]);
    const upstream = { nodes: { [up.addr]: 1 } };
    const base = { client_id: op.clientId, client_secret: op.clientSecret, discovery: op.discovery };
    await gw.put('/routes/jwks', { uri: '/jwks/*', plugins: { 'openid-connect': { ...base, bearer_only: true, use_jwks: true } }, upstream });
    await gw.put('/routes/scoped', {
      uri: '/scoped/*',
      plugins: { 'openid-connect': { ...base, bearer_only: true, use_jwks: true, required_scopes: ['read', 'write'] } },
      upstream,
    });
    await gw.put('/routes/intro', { uri: '/intro/*', plugins: { 'openid-connect': { ...base, bearer_only: true } }, upstream });
    const browser = {
      ...base,
      scope: 'openid email profile',
      redirect_uri: `${gw.url}/app/callback`,
      logout_path: '/app/logout',
      post_logout_redirect_uri: `${gw.url}/bye`,
      session: { secret: SESSION_SECRET },
    };
    await gw.put('/routes/app', { uri: '/app/*', plugins: { 'openid-connect': browser }, upstream });
    await gw.put('/routes/deny', { uri: '/deny/*', plugins: { 'openid-connect': { ...browser, unauth_action: 'deny' } }, upstream });
    await gw.put('/routes/pass', { uri: '/pass/*', plugins: { 'openid-connect': { ...browser, unauth_action: 'pass' } }, upstream });
  }, 30_000);
  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await op?.close();
  });

  it('validates confs like APISIX', () => {
    const base = { client_id: 'c', discovery: 'http://op/.well-known/openid-configuration' };
    expect(confError(def, { ...base, client_secret: 's' })).toContain('property "session.secret" is required when "bearer_only" is false');
    expect(confError(def, { ...base, bearer_only: true })).toContain('property "client_secret" is required');
    expect(confError(def, { ...base, bearer_only: true, use_jwks: true })).toBeNull();
    expect(confError(def, { ...base, client_secret: 's', session: { secret: 'short' } })).not.toBeNull();
    expect(confError(def, { ...base, client_secret: 's', session: { secret: SESSION_SECRET, storage: 'redis', redis: {} } })).toContain('not supported');
    expect(confError(def, { ...base, bearer_only: true, use_jwks: true, unauth_action: 'login' })).not.toBeNull();
    expect(confError(def, { ...base, bearer_only: true, public_key: 'not a key' })).toContain('public_key');
  });

  it('bearer_only + JWKS: a JWT access token from the OP is accepted and its claims go upstream', async () => {
    const token = await op.clientCredentials();
    const r = await fetch(`${gw.url}/jwks/x`, { headers: { authorization: `Bearer ${token}`, 'x-userinfo': 'forged' } });
    expect(r.status).toBe(200);
    const echo = (await r.json()) as Echo;
    expect(echo.headers['x-access-token']).toBe(token);
    const info = fromB64(echo.headers['x-userinfo']!);
    expect(info.client_id).toBe(op.clientId);
    expect(info.iss).toBe(op.issuer);
    // the client's X-Access-Token header is also a way to present the token
    const r2 = await fetch(`${gw.url}/jwks/x`, { headers: { 'x-access-token': token } });
    expect(r2.status).toBe(200);
    await r2.arrayBuffer();
  });

  it('bearer_only + JWKS: missing, tampered, foreign-key, alg none and expired tokens are 401', async () => {
    const seen = up.seen.length;
    let r = await fetch(`${gw.url}/jwks/x`);
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toBe('Bearer realm="apisix"');
    await r.arrayBuffer();

    const token = await op.clientCredentials();
    const [h, p, s] = token.split('.') as [string, string, string];
    const claims = decodeJwt(token);
    const tamperedPayload = Buffer.from(JSON.stringify({ ...claims, scope: 'read write admin' })).toString('base64url');
    const flipped = s.slice(0, 10) + (s[10] === 'A' ? 'B' : 'A') + s.slice(11);
    // a token with the OP's kid signed by another key
    const { privateKey } = await generateKeyPair('RS256');
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: decodeProtectedHeader(token).kid, typ: 'at+jwt' }).sign(privateKey);
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${p}.`;
    for (const bad of [`${h}.${tamperedPayload}.${s}`, `${h}.${p}.${flipped}`, forged, none, 'not-a-jwt']) {
      r = await fetch(`${gw.url}/jwks/x`, { headers: { authorization: `Bearer ${bad}` } });
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toMatch(/^Bearer realm="apisix", error="invalid_token", error_description="/);
      await r.arrayBuffer();
    }

    op.setClientCredentialsTtl(1);
    const shortLived = await op.clientCredentials();
    op.setClientCredentialsTtl(600);
    await new Promise((res) => setTimeout(res, 2100));
    r = await fetch(`${gw.url}/jwks/x`, { headers: { authorization: `Bearer ${shortLived}` } });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toContain('token expired');
    await r.arrayBuffer();
    expect(up.seen.length).toBe(seen);
  });

  it('required_scopes: 403 with the APISIX body when a scope is missing', async () => {
    let r = await fetch(`${gw.url}/scoped/x`, { headers: { authorization: `Bearer ${await op.clientCredentials({ scope: 'read' })}` } });
    expect(r.status).toBe(403);
    expect(await r.text()).toBe('{"error":"required scopes read, write not present"}');
    r = await fetch(`${gw.url}/scoped/x`, { headers: { authorization: `Bearer ${await op.clientCredentials({ scope: 'read write' })}` } });
    expect(r.status).toBe(200);
    await r.arrayBuffer();
  });

  it('bearer_only + introspection: opaque tokens checked by the OP, answers cached', async () => {
    const token = await op.clientCredentials({ resource: false });
    expect(token.split('.').length).toBe(1);
    const before = op.hits.get('/token/introspection') ?? 0;
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${gw.url}/intro/x`, { headers: { authorization: `Bearer ${token}` } });
      expect(r.status).toBe(200);
      const echo = (await r.json()) as Echo;
      expect(fromB64(echo.headers['x-userinfo']!)).toMatchObject({ active: true, client_id: op.clientId });
    }
    expect((op.hits.get('/token/introspection') ?? 0) - before).toBe(1);
    const r = await fetch(`${gw.url}/intro/x`, { headers: { authorization: 'Bearer no-such-token' } });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toContain('error="invalid_token"');
    await r.arrayBuffer();
  });

  it('authorization-code flow: login through the OP, then the upstream sees the identity headers', async () => {
    const b = new Browser();
    const { res, hops } = await b.follow(`${gw.url}/app/page?x=1`);
    expect(res.status).toBe(200);
    expect(hops[1]).toMatch(new RegExp(`^${op.issuer}/auth\\?`));
    const auth = new URL(hops[1]!).searchParams;
    expect(auth.get('state')).toBeTruthy();
    expect(auth.get('nonce')).toBeTruthy();
    expect(auth.get('redirect_uri')).toBe(`${gw.url}/app/callback`);
    expect(hops.at(-1)).toBe(`${gw.url}/app/page?x=1`);
    const echo = (await res.json()) as Echo;
    expect(echo.headers['x-access-token']).toBeTruthy();
    const id = fromB64(echo.headers['x-id-token']!);
    expect(id).toMatchObject({ sub: ACCOUNT.sub, iss: op.issuer, aud: op.clientId, nonce: auth.get('nonce') });
    expect(fromB64(echo.headers['x-userinfo']!)).toMatchObject({ sub: ACCOUNT.sub, email: ACCOUNT.email, name: ACCOUNT.name });

    // the session cookie alone authenticates later requests, without calling the OP's token endpoint
    const tokenHits = op.hits.get('/token') ?? 0;
    const again = await b.get(`${gw.url}/app/other`);
    expect(again.status).toBe(200);
    expect(((await again.json()) as Echo).headers['x-access-token']).toBe(echo.headers['x-access-token']);
    expect(op.hits.get('/token') ?? 0).toBe(tokenHits);

    // the cookie is sealed: its contents are not readable and a modified cookie is no session
    const jar = b.jar(gw.url);
    const sealed = jar.get('session')!;
    expect(Buffer.from(sealed, 'base64url').toString()).not.toContain(ACCOUNT.email);
    expect(new SessionCodec({ secret: SESSION_SECRET }).open(sealed)).toMatchObject({ user: { email: ACCOUNT.email } });
    expect(new SessionCodec({ secret: 'another-secret-0123456789' }).open(sealed)).toBeNull();
    jar.set('session', sealed.slice(0, -4) + (sealed.endsWith('AAAA') ? 'BBBB' : 'AAAA'));
    const tampered = await b.get(`${gw.url}/app/page`);
    expect(tampered.status).toBe(302);
    expect(tampered.headers.get('location')).toMatch(new RegExp(`^${op.issuer}/auth\\?`));
    await tampered.arrayBuffer();
  });

  it('the URL kept for after the login is always a path on the gateway', async () => {
    const r = await fetch(`${gw.url}//app/x?y=1`, { redirect: 'manual' });
    expect(r.status).toBe(302);
    await r.arrayBuffer();
    const cookie = r.headers.getSetCookie().find((c) => c.startsWith('session='))!;
    const pending = new SessionCodec({ secret: SESSION_SECRET }).open(cookie.slice(8).split(';')[0]!);
    expect(pending?.original_url).toBe('/app/x?y=1');
  });

  it('a callback with a wrong state is refused', async () => {
    const b = new Browser();
    const first = await b.get(`${gw.url}/app/page`);
    expect(first.status).toBe(302);
    await first.arrayBuffer();
    const r = await b.get(`${gw.url}/app/callback?code=abc&state=forged`);
    expect(r.status).toBe(401);
    await r.arrayBuffer();
  });

  it('renews an expired access token with the refresh token', async () => {
    op.setAccessTokenTtl(1);
    const b = new Browser();
    const { res } = await b.follow(`${gw.url}/app/page`);
    op.setAccessTokenTtl(3600);
    expect(res.status).toBe(200);
    const firstToken = ((await res.json()) as Echo).headers['x-access-token'];
    await new Promise((r) => setTimeout(r, 1500));
    const tokenHits = op.hits.get('/token') ?? 0;
    const r = await b.get(`${gw.url}/app/page`);
    expect(r.status).toBe(200);
    expect(r.headers.getSetCookie().some((c) => c.startsWith('session='))).toBe(true);
    const renewed = ((await r.json()) as Echo).headers['x-access-token'];
    expect(renewed).toBeTruthy();
    expect(renewed).not.toBe(firstToken);
    expect((op.hits.get('/token') ?? 0) - tokenHits).toBe(1);
  });

  it('logout clears the session and sends the browser to the OP end_session endpoint', async () => {
    const b = new Browser();
    expect((await b.follow(`${gw.url}/app/page`)).res.status).toBe(200);
    const r = await b.get(`${gw.url}/app/logout`);
    expect(r.status).toBe(302);
    const loc = new URL(r.headers.get('location')!);
    expect(`${loc.origin}${loc.pathname}`).toBe(`${op.issuer}/session/end`);
    expect(loc.searchParams.get('post_logout_redirect_uri')).toBe(`${gw.url}/bye`);
    expect(b.jar(gw.url).has('session')).toBe(false);
    await r.arrayBuffer();
    const after = await b.get(`${gw.url}/app/page`);
    expect(after.status).toBe(302);
    await after.arrayBuffer();
  });

  it('unauth_action deny answers 401, pass proxies without identity headers', async () => {
    let r = await fetch(`${gw.url}/deny/x`, { redirect: 'manual' });
    expect(r.status).toBe(401);
    await r.arrayBuffer();
    r = await fetch(`${gw.url}/pass/x`, { redirect: 'manual', headers: { 'x-id-token': 'forged' } });
    expect(r.status).toBe(200);
    const echo = (await r.json()) as Echo;
    expect(echo.headers['x-id-token']).toBeUndefined();
    expect(echo.headers['x-access-token']).toBeUndefined();
  });
});
