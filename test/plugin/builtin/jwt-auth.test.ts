import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign as nodeSign, type KeyObject } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fieldCodecFromConfig, lookupFromPluginDefs } from '../../../src/config/encryption.ts';
import { jwtAuthPlugin as def, removeCookie } from '../../../src/plugin/builtin/jwt-auth.ts';
import { verifyKeyFor } from '../../../src/plugin/builtin/jwt-auth/verify.ts';
import { silentLogger } from '../../../src/observability/logger.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { gatewayTls, h2Request, startWsUpstream, wsRoundTrip, type WsUpstream } from './auth-transports.ts';
import { confError, fakeContext } from '../helpers.ts';

type Echo = { headers: Record<string, string | undefined>; url: string };

const now = () => Math.floor(Date.now() / 1000);
const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

interface AlgCase {
  alg: string;
  /** Consumer conf fields besides key/algorithm. */
  conf: Record<string, unknown>;
  /** What jose signs with. */
  signKey: KeyObject | Uint8Array;
}

function rsa(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync('rsa', { modulusLength: 2048 });
}
const pem = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }) as string;

function algCases(): AlgCase[] {
  const r = rsa();
  const ec256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ec384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const ed = generateKeyPairSync('ed25519');
  const hs = (alg: string, secret: string): AlgCase => ({ alg, conf: { secret }, signKey: new TextEncoder().encode(secret) });
  const asym = (alg: string, kp: { publicKey: KeyObject; privateKey: KeyObject }): AlgCase => ({
    alg,
    conf: { public_key: pem(kp.publicKey) },
    signKey: kp.privateKey,
  });
  // base64_secret: the consumer holds base64 of 64 random-looking bytes; jose signs with the raw bytes.
  const raw512 = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff));
  return [
    hs('HS256', 'hs256-secret'),
    hs('HS384', 'hs384-secret'),
    { alg: 'HS512', conf: { secret: raw512.toString('base64'), base64_secret: true }, signKey: new Uint8Array(raw512) },
    asym('RS256', r),
    asym('RS384', r),
    asym('RS512', r),
    asym('PS256', r),
    asym('ES256', ec256),
    asym('ES384', ec384),
    asym('EdDSA', ed),
  ];
}

async function joseToken(alg: string, key: KeyObject | Uint8Array, payload: JWTPayload): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg, typ: 'JWT' }).sign(key);
}

/** HS256 made by openssl, independent of jose and of node's HMAC. */
function opensslHs256(secret: string, payload: object): string {
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(payload))}`;
  const mac = execFileSync('openssl', ['dgst', '-sha256', '-hmac', secret, '-binary'], { input });
  return `${input}.${b64url(mac)}`;
}

/** RS256 made with node:crypto's sign (PKCS#1 v1.5), independent of jose. */
function nodeRs256(privateKey: KeyObject, payload: object): string {
  const input = `${b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' }))}.${b64url(JSON.stringify(payload))}`;
  return `${input}.${b64url(nodeSign('sha256', Buffer.from(input), privateKey))}`;
}

describe('jwt-auth', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let wsUp: WsUpstream;
  const cases = algCases();
  const rsaKeys = rsa();

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startEcho('a');
    wsUp = await startWsUpstream();
    for (const c of cases) {
      const name = `user-${c.alg.toLowerCase()}`;
      await gw.put(`/consumers/${name}`, { username: name, plugins: { 'jwt-auth': { key: `${name}-key`, algorithm: c.alg, ...c.conf } } });
    }
    await gw.put('/consumers/jack', { username: 'jack', plugins: { 'jwt-auth': { key: 'jack-key', secret: 'jack-secret' } } });
    await gw.put('/consumers/rsa', { username: 'rsa', plugins: { 'jwt-auth': { key: 'rsa-key', algorithm: 'RS256', public_key: pem(rsaKeys.publicKey) } } });
    await gw.put('/consumers/lenient', { username: 'lenient', plugins: { 'jwt-auth': { key: 'lenient-key', secret: 'lenient-secret', lifetime_grace_period: 100 } } });
    await gw.put('/consumers/rose', { username: 'rose' });
    const cred = await gw.admin('PUT', '/consumers/rose/credentials/rose-jwt', { plugins: { 'jwt-auth': { key: 'rose-key', secret: 'rose-secret' } } });
    expect(cred.status).toBeLessThan(300);
    await gw.put('/consumers/anon', { username: 'anon' });
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/1', { uri: '/jwt/*', plugins: { 'jwt-auth': {} }, upstream });
    await gw.put('/routes/2', { uri: '/hide/*', plugins: { 'jwt-auth': { hide_credentials: true } }, upstream });
    await gw.put('/routes/3', {
      uri: '/custom/*',
      plugins: { 'jwt-auth': { header: 'X-Token', query: 'tok', cookie: 'ck', key_claim_name: 'iss', realm: 'my-jwt-realm' } },
      upstream,
    });
    await gw.put('/routes/4', { uri: '/anon/*', plugins: { 'jwt-auth': { anonymous_consumer: 'anon' } }, upstream });
    await gw.put('/routes/5', { uri: '/ghost/*', plugins: { 'jwt-auth': { anonymous_consumer: 'ghost' } }, upstream });
    await gw.put('/routes/6', { uri: '/claims/*', plugins: { 'jwt-auth': { claims_to_verify: ['exp'] } }, upstream });
    await gw.put('/routes/ws', { uri: '/ws/*', enable_websocket: true, plugins: { 'jwt-auth': {} }, upstream: { nodes: { [wsUp.addr]: 1 } } });
    await gw.synced();
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await wsUp?.close();
  });

  const get = (p: string, headers: Record<string, string> = {}) => fetch(`${gw.url}${p}`, { headers });
  const jack = (payload: JWTPayload = {}) => joseToken('HS256', new TextEncoder().encode('jack-secret'), { key: 'jack-key', exp: now() + 60, ...payload });

  async function expect401(res: Response, message: string, realm = 'jwt'): Promise<void> {
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(`Bearer realm="${realm}"`);
    expect(await res.json()).toEqual({ message });
  }

  it('validates route and consumer confs like APISIX', async () => {
    expect(confError(def, {})).toBeNull();
    expect(confError(def, { claims_to_verify: ['iat'] })).not.toBeNull();
    expect(confError(def, { key_claim_name: '' })).not.toBeNull();
    const bad = async (conf: Record<string, unknown>) => (await gw.admin('PUT', '/consumers/bad', { username: 'bad', plugins: { 'jwt-auth': conf } })).body;
    expect(await bad({ key: 'k' })).toEqual({
      error_msg: 'invalid plugins configuration: failed to check the configuration of plugin jwt-auth err: property "secret" is required when using HS based algorithms',
    });
    expect(await bad({ key: 'k', secret: 'a_b', base64_secret: true })).toEqual({
      error_msg: 'invalid plugins configuration: failed to check the configuration of plugin jwt-auth err: base64_secret required but the secret is not in base64 format',
    });
    expect((await bad({ key: 'k', algorithm: 'RS256' })).error_msg).toMatch(/^invalid plugins configuration: failed to check the configuration of plugin jwt-auth err: /);
    expect((await bad({ secret: 's' })).error_msg).toMatch(/"key" is required/);
  });

  it('declares the secret an encrypt_fields entry', () => {
    const codec = fieldCodecFromConfig({}, lookupFromPluginDefs((n) => (n === def.name ? def : undefined)));
    const value = { plugins: { 'jwt-auth': { key: 'jack-key', secret: 'jack-secret' } } };
    const stored = codec.encode('consumers', value, 'jack');
    const conf = (stored.plugins as Record<string, Record<string, string>>)['jwt-auth']!;
    expect(conf.key).toBe('jack-key');
    expect(conf.secret).not.toBe('jack-secret');
    expect(codec.decode('consumers', stored)).toEqual(value);
  });

  it('accepts tokens signed by jose with every algorithm family and sends the consumer upstream', async () => {
    for (const c of cases) {
      const name = `user-${c.alg.toLowerCase()}`;
      const token = await joseToken(c.alg, c.signKey, { key: `${name}-key`, exp: now() + 60, nbf: now() - 5 });
      const r = await get('/jwt/x', { authorization: `Bearer ${token}`, 'x-consumer-username': 'forged', 'x-credential-identifier': 'forged' });
      expect(r.status, c.alg).toBe(200);
      const echo = (await r.json()) as Echo;
      expect(echo.headers['x-consumer-username']).toBe(name);
      expect(echo.headers['x-credential-identifier']).toBeUndefined();
      expect(echo.headers.authorization).toBe(`Bearer ${token}`);
    }
  });

  it('accepts tokens made without jose (openssl HMAC, node:crypto RSA)', async () => {
    let r = await get('/jwt/x', { authorization: opensslHs256('jack-secret', { key: 'jack-key', exp: now() + 60 }) });
    expect(r.status).toBe(200);
    expect(((await r.json()) as Echo).headers['x-consumer-username']).toBe('jack');
    r = await get('/jwt/x', { authorization: `Bearer ${nodeRs256(rsaKeys.privateKey, { key: 'rsa-key' })}` });
    expect(r.status).toBe(200);
    expect(((await r.json()) as Echo).headers['x-consumer-username']).toBe('rsa');
  });

  it('reads the token from the header (with or without Bearer), the query, then the cookie', async () => {
    const t = await jack();
    const places: Record<string, string>[] = [{ authorization: `Bearer ${t}` }, { authorization: `bearer ${t}` }, { authorization: t }, { cookie: `a=1; jwt=${t}` }];
    for (const headers of places) {
      const r = await get('/jwt/x', headers);
      expect(r.status, JSON.stringify(headers)).toBe(200);
      await r.arrayBuffer();
    }
    const r = await get(`/jwt/x?jwt=${t}`);
    expect(r.status).toBe(200);
    await r.arrayBuffer();
    // Custom names, and the consumer named by another claim.
    const iss = await joseToken('HS256', new TextEncoder().encode('jack-secret'), { iss: 'jack-key' });
    for (const [p, headers] of [['/custom/x', { 'x-token': iss }], [`/custom/x?tok=${iss}`, {}], ['/custom/x', { cookie: `ck=${iss}` }]] as const) {
      const res = await get(p, headers);
      expect(res.status, p).toBe(200);
      expect(((await res.json()) as Echo).headers['x-consumer-username']).toBe('jack');
    }
    await expect401(await get('/custom/x', { authorization: `Bearer ${iss}` }), 'Missing JWT token in request', 'my-jwt-realm');
    await expect401(await get('/custom/x', { 'x-token': t }), 'missing user key in JWT token', 'my-jwt-realm');
  });

  it('rejects bad tokens with APISIX bodies and never reaches the upstream', async () => {
    const before = up.seen.length;
    await expect401(await get('/jwt/x'), 'Missing JWT token in request');
    const apisixInvalid =
      'invalid-eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJrZXkiOiJ1c2VyLWtleSIsImV4cCI6MTU2Mzg3MDUwMX0.pPNVvh-TQsdDzorRwa-uuiLYiEBODscp9wv0cwD6c68';
    await expect401(await get(`/jwt/x?jwt=${apisixInvalid}`), 'JWT token invalid');
    await expect401(await get('/jwt/x', { authorization: 'Bearer not-a-jwt' }), 'JWT token invalid');
    const hs = new TextEncoder().encode('jack-secret');
    await expect401(await get('/jwt/x', { authorization: await joseToken('HS256', hs, { sub: 'x' }) }), 'missing user key in JWT token');
    await expect401(await get('/jwt/x', { authorization: await joseToken('HS256', hs, { key: 'nobody' }) }), 'Invalid user key in JWT token');

    const failed = 'failed to verify jwt';
    // expired, not yet valid, wrong secret
    await expect401(await get('/jwt/x', { authorization: await jack({ exp: now() - 10 }) }), failed);
    await expect401(await get('/jwt/x', { authorization: await jack({ nbf: now() + 60 }) }), failed);
    const wrong = await joseToken('HS256', new TextEncoder().encode('other-secret'), { key: 'jack-key' });
    await expect401(await get('/jwt/x', { authorization: wrong }), failed);
    // a valid signature over a different payload
    const [h, , s] = (await jack()).split('.');
    await expect401(await get('/jwt/x', { authorization: `${h}.${b64url(JSON.stringify({ key: 'jack-key', admin: true }))}.${s}` }), failed);
    // alg none
    const none = `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify({ key: 'jack-key' }))}.`;
    await expect401(await get('/jwt/x', { authorization: none }), failed);
    // key confusion: the RS256 consumer's public key used as an HS256 secret
    const confused = await joseToken('HS256', new TextEncoder().encode(pem(rsaKeys.publicKey)), { key: 'rsa-key' });
    await expect401(await get('/jwt/x', { authorization: confused }), failed);
    // right key, other algorithm than the consumer's
    const hs512 = await joseToken('HS512', hs, { key: 'jack-key' });
    await expect401(await get('/jwt/x', { authorization: hs512 }), failed);
    // exp that is not a number
    await expect401(await get('/jwt/x', { authorization: await jack({ exp: 'never' as unknown as number }) }), failed);
    expect(up.seen.length).toBe(before);
  });

  it('applies lifetime_grace_period to exp and nbf', async () => {
    const key = new TextEncoder().encode('lenient-secret');
    for (const payload of [{ exp: now() - 50 }, { nbf: now() + 50 }]) {
      const r = await get('/jwt/x', { authorization: await joseToken('HS256', key, { key: 'lenient-key', ...payload }) });
      expect(r.status, JSON.stringify(payload)).toBe(200);
      await r.arrayBuffer();
    }
    await expect401(await get('/jwt/x', { authorization: await joseToken('HS256', key, { key: 'lenient-key', exp: now() - 150 }) }), 'failed to verify jwt');
  });

  it('claims_to_verify makes the listed claims required', async () => {
    const noExp = await joseToken('HS256', new TextEncoder().encode('jack-secret'), { key: 'jack-key' });
    const r = await get('/jwt/x', { authorization: noExp });
    expect(r.status).toBe(200);
    await r.arrayBuffer();
    await expect401(await get('/claims/x', { authorization: noExp }), 'failed to verify jwt');
    const ok = await get('/claims/x', { authorization: await jack() });
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
  });

  it('authenticates with a credential and sends its id upstream', async () => {
    const t = await joseToken('HS256', new TextEncoder().encode('rose-secret'), { key: 'rose-key' });
    const r = await get('/jwt/x', { authorization: t });
    expect(r.status).toBe(200);
    const echo = (await r.json()) as Echo;
    expect(echo.headers['x-consumer-username']).toBe('rose');
    expect(echo.headers['x-credential-identifier']).toBe('rose-jwt');
  });

  it('hide_credentials removes the header, the query argument or only the token cookie', async () => {
    const t = await jack();
    let r = await get('/hide/x', { authorization: `Bearer ${t}` });
    let echo = (await r.json()) as Echo;
    expect(echo.headers.authorization).toBeUndefined();
    expect(echo.headers['x-consumer-username']).toBe('jack');
    r = await get(`/hide/x?a=1&jwt=${t}&b=2`);
    echo = (await r.json()) as Echo;
    expect(echo.url).toBe('/hide/x?a=1&b=2');
    r = await get('/hide/x', { cookie: `a=1; jwt=${t}; session=x.y` });
    echo = (await r.json()) as Echo;
    expect(echo.headers.cookie).toBe('a=1; session=x.y');
    expect(echo.headers['x-consumer-username']).toBe('jack');
  });

  it('falls back to the anonymous consumer, or 401 when it does not exist', async () => {
    let r = await get('/anon/x', { authorization: 'Bearer garbage' });
    expect(r.status).toBe(200);
    expect(((await r.json()) as Echo).headers['x-consumer-username']).toBe('anon');
    r = await get('/anon/x', { authorization: await jack() });
    expect(((await r.json()) as Echo).headers['x-consumer-username']).toBe('jack');
    await expect401(await get('/ghost/x'), 'Invalid user authorization');
  });

  it('store_in_ctx keeps the verified payload for later plugins', async () => {
    const conf = { key: 'jack-key', secret: 'jack-secret', algorithm: 'HS256' };
    const consumer = { username: 'jack' };
    const consumers = { find: (_p: string, _f: string, v: string) => (v === 'jack-key' ? { consumer, conf } : undefined), withPlugin: () => [] };
    const env = { logger: silentLogger, metadata: undefined, attr: undefined, scopeKey: 't', consumers };
    const token = await jack({ role: 'admin' });
    for (const store of [true, false]) {
      const inst = def.create({ header: 'authorization', query: 'jwt', cookie: 'jwt', key_claim_name: 'key', store_in_ctx: store }, env);
      const ctx = fakeContext({ headers: { authorization: token } });
      expect(await inst.rewrite!(ctx)).toBeUndefined();
      expect(ctx.consumer).toBe(consumer);
      expect((ctx.pluginData.get('jwt-auth') as JWTPayload | undefined)?.role).toBe(store ? 'admin' : undefined);
    }
    // The verification key is imported once per credential conf, not per request.
    expect(verifyKeyFor(conf, 'HS256')).toBe(verifyKeyFor(conf, 'HS256'));
  });

  it('removes one cookie and keeps the others', () => {
    expect(removeCookie('a=1; jwt=x; b=2', 'jwt')).toBe('a=1; b=2');
    expect(removeCookie('jwt=x', 'jwt')).toBeNull();
    expect(removeCookie('jwtx=1;jwt=2', 'jwt')).toBe('jwtx=1');
  });

  it('guards h2c requests and WebSocket upgrades the same way', async () => {
    const t = await jack();
    let r = await h2Request(gw.url, { ':method': 'GET', ':path': `/jwt/h2?jwt=${t}` });
    expect(r.status).toBe(200);
    expect((JSON.parse(r.body) as Echo).headers['x-consumer-username']).toBe('jack');
    r = await h2Request(gw.url, { ':method': 'GET', ':path': '/jwt/h2', authorization: await jack({ exp: now() - 10 }) });
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Bearer realm="jwt"');
    expect(JSON.parse(r.body)).toEqual({ message: 'failed to verify jwt' });

    const wsUrl = `ws://127.0.0.1:${gw.port}/ws/x`;
    const before = wsUp.upgrades.length;
    const refused = await wsRoundTrip(wsUrl, { authorization: 'Bearer nope' });
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expect(refused.status).toBe(401);
      expect(JSON.parse(refused.body)).toEqual({ message: 'JWT token invalid' });
    }
    expect(wsUp.upgrades.length).toBe(before);
    const ok = await wsRoundTrip(wsUrl, { authorization: `Bearer ${t}` });
    expect(ok).toEqual({ ok: true, echo: 'echo:ping' });
    expect(wsUp.upgrades.at(-1)!['x-consumer-username']).toBe('jack');
  });
  it('guards HTTP/2 over TLS (ALPN h2 on the HTTPS listener) the same way', async () => {
    const tls = await gatewayTls(gw);
    try {
      const req = (path: string, headers: Record<string, string> = {}) =>
        h2Request(tls.origin, { ':method': 'GET', ':path': path, ':authority': tls.host, ...headers }, undefined, tls.tls);
      const t = await jack();
      let r = await req('/jwt/h2tls', { authorization: `Bearer ${t}`, 'x-consumer-username': 'forged' });
      expect(r.alpn).toBe('h2');
      expect(r.status).toBe(200);
      expect((JSON.parse(r.body) as Echo).headers['x-consumer-username']).toBe('jack');
      const seen = up.seen.length;
      r = await req('/jwt/h2tls', { authorization: await jack({ exp: now() - 10 }) });
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Bearer realm="jwt"');
      expect(JSON.parse(r.body)).toEqual({ message: 'failed to verify jwt' });
      r = await req('/jwt/h2tls');
      expect(r.status).toBe(401);
      expect(JSON.parse(r.body)).toEqual({ message: 'Missing JWT token in request' });
      expect(up.seen.length).toBe(seen);
    } finally {
      await tls.cleanup();
    }
  });
});
