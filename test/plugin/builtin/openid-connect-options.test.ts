// openid-connect options beyond the basic flows, against a real OpenID Provider (oidc-provider): session
// idling/rolling timeouts, force_reauthorize, refresh_session_interval (silent re-authentication),
// revoke_tokens_on_logout, private_key_jwt client authentication, the introspection cache's lifetime and
// cache_segment, and the options refused at check time.
import { generateKeyPairSync } from 'node:crypto';
import { exportJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openidConnectPlugin as def } from '../../../src/plugin/builtin/openid-connect.ts';
import { SessionCodec } from '../../../src/plugin/builtin/openid-connect/session.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startOp, type TestOp } from '../../helpers/oidc-provider.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { confError } from '../helpers.ts';
import { Browser } from './openid-connect-browser.ts';

type Echo = { headers: Record<string, string> };
const SESSION_SECRET = 'session-secret-0123456789abcdef';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
/** Sleeps until `sec` whole seconds after the second that contains `t` (ms), plus 100 ms. */
const untilSecondsAfter = (t: number, sec: number) => sleep((Math.floor(t / 1000) + sec) * 1000 + 100 - Date.now());
const PKJWT_CLIENT = 'switchyard-pkjwt';

describe('openid-connect options against a real OpenID provider', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let op: TestOp;
  const clientKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = (k: typeof clientKey) => k.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startEcho('a');
    const names = ['idle', 'rolling', 'force', 'silent', 'revoke', 'keep', 'pkjwt', 'badkey'];
    const jwk = { ...(await exportJWK(clientKey.publicKey)), kid: 'k1', use: 'sig', alg: 'RS256' };
    op = await startOp(
      names.map((n) => `${gw.url}/${n}/callback`),
      [],
      [{ client_id: PKJWT_CLIENT, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] } }],
    );
    const upstream = { nodes: { [up.addr]: 1 } };
    const route = async (name: string, extra: Record<string, unknown>, session: Record<string, unknown> = {}) => {
      const conf = {
        client_id: op.clientId,
        client_secret: op.clientSecret,
        discovery: op.discovery,
        scope: 'openid email profile',
        redirect_uri: `${gw.url}/${name}/callback`,
        logout_path: `/${name}/logout`,
        session: { secret: SESSION_SECRET, ...session },
        ...extra,
      };
      await gw.put(`/routes/${name}`, { uri: `/${name}/*`, plugins: { 'openid-connect': conf }, upstream });
    };
    await route('idle', {}, { idling_timeout: 4 });
    await route('rolling', {}, { rolling_timeout: 4 });
    await route('force', { force_reauthorize: true });
    await route('silent', { refresh_session_interval: 1 });
    await route('revoke', { revoke_tokens_on_logout: true });
    await route('keep', {});
    const pkjwt = { client_id: PKJWT_CLIENT, client_secret: undefined, token_endpoint_auth_method: 'private_key_jwt', client_rsa_private_key_id: 'k1' };
    await route('pkjwt', { ...pkjwt, client_rsa_private_key: pem(clientKey) });
    await route('badkey', { ...pkjwt, client_rsa_private_key: pem(otherKey) });
    const bearer = { client_id: op.clientId, client_secret: op.clientSecret, discovery: op.discovery, bearer_only: true };
    for (const [name, extra] of [
      ['introttl', { introspection_interval: 600 }],
      ['sega', { cache_segment: 'a' }],
      ['segb', { cache_segment: 'b' }],
    ] as const) {
      await gw.put(`/routes/${name}`, { uri: `/${name}/*`, plugins: { 'openid-connect': { ...bearer, ...extra } }, upstream });
    }
    await gw.synced();
  }, 60_000);
  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await op?.close();
  });

  /** A GET carrying exactly `session` as the session cookie, whatever its Expires said. */
  const withCookie = (path: string, session: string) => fetch(`${gw.url}${path}`, { redirect: 'manual', headers: { cookie: `session=${session}` } });

  async function expectLoginRedirect(r: Response): Promise<URL> {
    expect(r.status).toBe(302);
    const loc = new URL(r.headers.get('location')!);
    expect(`${loc.origin}${loc.pathname}`).toBe(`${op.issuer}/auth`);
    await r.arrayBuffer();
    return loc;
  }

  async function login(b: Browser, path: string): Promise<{ session: string; echo: Echo }> {
    const { res } = await b.follow(`${gw.url}${path}`);
    expect(res.status).toBe(200);
    return { session: b.jar(gw.url).get('session')!, echo: (await res.json()) as Echo };
  }

  it('refuses at check time the options it cannot honour, and checks the JWT client authentication settings', () => {
    const base = { client_id: 'c', client_secret: 's', discovery: 'http://op/.well-known/openid-configuration', bearer_only: true, use_jwks: true };
    expect(confError(def, { ...base, accept_none_alg: true })).toContain('"accept_none_alg" true is not supported');
    expect(confError(def, { ...base, accept_none_alg: false })).toBeNull();
    const browser = { ...base, bearer_only: false, session: { secret: SESSION_SECRET } };
    expect(confError(def, { ...browser, token_endpoint_auth_method: 'private_key_jwt' })).toContain('property "client_rsa_private_key" is required for private_key_jwt');
    expect(confError(def, { ...browser, token_endpoint_auth_method: 'private_key_jwt', client_rsa_private_key: 'nope' })).toContain('not a valid private key');
    const key = pem(clientKey);
    expect(confError(def, { ...browser, token_endpoint_auth_method: 'private_key_jwt', client_rsa_private_key: key })).toBeNull();
    expect(confError(def, { ...browser, token_endpoint_auth_method: 'private_key_jwt', client_rsa_private_key: key, client_jwt_assertion_alg: 'ES256' })).toContain(
      'client_jwt_assertion_alg "ES256" does not match the rsa key',
    );
    expect(confError(def, { ...browser, token_endpoint_auth_method: 'client_secret_jwt', client_jwt_assertion_alg: 'RS256' })).toContain('needs HS256 or HS512');
    expect(confError(def, { ...browser, token_endpoint_auth_method: 'client_secret_jwt' })).toBeNull();
    expect(confError(def, { ...browser, token_endpoint_auth_method: 'tls_client_auth' })).toContain('is not supported');
  });

  it('session.idling_timeout: each use touches the session; one left idle longer is no session (login redirect)', async () => {
    const b = new Browser();
    const { session: first } = await login(b, '/idle/page');
    const loggedIn = Date.now();
    await sleep(1500);
    const r = await withCookie('/idle/page', first);
    expect(r.status).toBe(200);
    await r.arrayBuffer();
    const touched = r.headers.getSetCookie().find((c) => c.startsWith('session='));
    expect(touched).toBeDefined();
    // idling_timeout 4 s: 5 s after the login the untouched cookie has been idle too long, the touched one not.
    await untilSecondsAfter(loggedIn, 5);
    await expectLoginRedirect(await withCookie('/idle/page', first));
    const alive = await withCookie('/idle/page', touched!.slice(8).split(';')[0]!);
    expect(alive.status).toBe(200);
    await alive.arrayBuffer();
  });

  it('session.rolling_timeout: a session in use is renewed after 3/4 of it; one not renewed in time is no session', async () => {
    const b = new Browser();
    const { session: first } = await login(b, '/rolling/page');
    const loggedIn = Date.now();
    const codec = new SessionCodec({ secret: SESSION_SECRET });
    const rolledAt = codec.open(first)!.rolled!;
    await untilSecondsAfter(loggedIn, 3);
    const r = await withCookie('/rolling/page', first);
    expect(r.status).toBe(200);
    await r.arrayBuffer();
    const renewed = r.headers.getSetCookie().find((c) => c.startsWith('session='))!.slice(8).split(';')[0]!;
    expect(codec.open(renewed)!.rolled).toBeGreaterThan(rolledAt);
    await untilSecondsAfter(loggedIn, 5);
    await expectLoginRedirect(await withCookie('/rolling/page', first));
    const alive = await withCookie('/rolling/page', renewed);
    expect(alive.status).toBe(200);
    await alive.arrayBuffer();
  });

  it('force_reauthorize: a request with an authenticated session still goes through the OP', async () => {
    const seen = up.seen.length;
    const tokenHits = op.hits.get('/token') ?? 0;
    const b = new Browser();
    const { hops, res } = await b.follow(`${gw.url}/force/page`);
    await res.arrayBuffer();
    // OP, callback (code exchanged), back to the page, and straight back to the OP.
    const callback = hops.findIndex((h) => h.startsWith(`${gw.url}/force/callback?`));
    expect(callback).toBeGreaterThan(0);
    expect(hops[callback + 1]).toBe(`${gw.url}/force/page`);
    expect(hops[callback + 2]).toMatch(new RegExp(`^${op.issuer}/auth\\?`));
    expect((op.hits.get('/token') ?? 0) - tokenHits).toBeGreaterThanOrEqual(1);
    const session = new SessionCodec({ secret: SESSION_SECRET }).open(b.jar(gw.url).get('session')!);
    expect(session?.access_token ?? session?.state).toBeTruthy();
    expect(up.seen.length).toBe(seen);
    // The same kind of session on a route without the option reaches the upstream.
    expect((await new Browser().follow(`${gw.url}/keep/page`)).res.status).toBe(200);
  });

  it('refresh_session_interval: an older authentication is renewed silently with prompt=none', async () => {
    const b = new Browser();
    const loginStart = Date.now();
    await login(b, '/silent/page');
    const r0 = await b.get(`${gw.url}/silent/page`);
    // Within the interval (1 s) when the machine is quick; the check below does not depend on it.
    await r0.arrayBuffer();
    await untilSecondsAfter(loginStart, 2);
    const tokenHits = op.hits.get('/token') ?? 0;
    const r = await b.get(`${gw.url}/silent/page`);
    const loc = await expectLoginRedirect(r);
    expect(loc.searchParams.get('prompt')).toBe('none');
    // The OP still knows the browser: no login form, a new code, tokens, and the page.
    const { res, hops } = await b.follow(loc.toString());
    expect(res.status).toBe(200);
    expect(hops.at(-1)).toBe(`${gw.url}/silent/page`);
    expect((op.hits.get('/token') ?? 0) - tokenHits).toBe(1);
    await res.arrayBuffer();
  });

  it('refresh_session_interval counts from the successful callback, not from the redirect to the OP (lua-resty-openidc)', async () => {
    const b = new Browser();
    const redirectedAt = Date.now();
    const loc = await expectLoginRedirect(await b.get(`${gw.url}/keep/page`));
    // The user spends time at the OP: the callback comes in a later second than the redirect.
    await untilSecondsAfter(redirectedAt, 1);
    const callbackAfter = Math.floor(Date.now() / 1000);
    const { res } = await b.follow(loc.toString());
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    const session = new SessionCodec({ secret: SESSION_SECRET }).open(b.jar(gw.url).get('session')!);
    expect(session?.access_token).toBeTruthy();
    expect(session!.last_authenticated).toBeGreaterThanOrEqual(callbackAfter);
    expect(session!.last_authenticated).toBeGreaterThan(Math.floor(redirectedAt / 1000));
  });

  async function introspect(token: string): Promise<boolean> {
    const r = await fetch(`${op.issuer}/token/introspection`, {
      method: 'POST',
      headers: {
        authorization: 'Basic ' + Buffer.from(`${op.clientId}:${op.clientSecret}`).toString('base64'),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token }),
    });
    return ((await r.json()) as { active: boolean }).active;
  }

  it('revoke_tokens_on_logout: logout revokes the refresh and access tokens at the OP', async () => {
    const b = new Browser();
    const { echo, session } = await login(b, '/revoke/page');
    const access = echo.headers['x-access-token']!;
    const refresh = new SessionCodec({ secret: SESSION_SECRET }).open(session)!.refresh_token!;
    expect(await introspect(access)).toBe(true);
    expect(await introspect(refresh)).toBe(true);
    const before = op.hits.get('/token/revocation') ?? 0;
    const out = await b.get(`${gw.url}/revoke/logout`);
    expect(out.status).toBe(302);
    await out.arrayBuffer();
    expect((op.hits.get('/token/revocation') ?? 0) - before).toBe(2);
    expect(await introspect(access)).toBe(false);
    expect(await introspect(refresh)).toBe(false);

    // Without the option the tokens outlive the logout (APISIX's default).
    const k = new Browser();
    const kept = (await login(k, '/keep/page')).echo.headers['x-access-token']!;
    const r = await k.get(`${gw.url}/keep/logout`);
    await r.arrayBuffer();
    expect(op.hits.get('/token/revocation') ?? 0).toBe(before + 2);
    expect(await introspect(kept)).toBe(true);
  });

  it('introspection cache: introspection_interval never keeps an answer past the token expiry', async () => {
    op.setClientCredentialsTtl(1);
    const token = await op.clientCredentials({ resource: false });
    op.setClientCredentialsTtl(600);
    const issued = Date.now();
    let r = await fetch(`${gw.url}/introttl/x`, { headers: { authorization: `Bearer ${token}` } });
    expect(r.status).toBe(200);
    await r.arrayBuffer();
    await untilSecondsAfter(issued, 3);
    r = await fetch(`${gw.url}/introttl/x`, { headers: { authorization: `Bearer ${token}` } });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toContain('error="invalid_token"');
    await r.arrayBuffer();
  });

  it('introspection cache: cache_segment keeps the answers of two confs apart', async () => {
    const token = await op.clientCredentials({ resource: false });
    const hits = () => op.hits.get('/token/introspection') ?? 0;
    const before = hits();
    for (const path of ['/sega/x', '/sega/x', '/segb/x', '/segb/x']) {
      const r = await fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
      expect(r.status).toBe(200);
      await r.arrayBuffer();
    }
    expect(hits() - before).toBe(2);
  });

  it('private_key_jwt: the code is exchanged with a client assertion signed by client_rsa_private_key', async () => {
    const b = new Browser();
    const { echo } = await login(b, '/pkjwt/page');
    expect(echo.headers['x-access-token']).toBeTruthy();
    // The same client with a key the OP does not know for it: the token endpoint refuses, the login fails.
    const bad = new Browser();
    const { res } = await bad.follow(`${gw.url}/badkey/page`);
    expect(res.status).toBe(500);
    await res.arrayBuffer();
  });
});
