import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fieldCodecFromConfig, lookupFromPluginDefs } from '../../../src/config/encryption.ts';
import { hmacAuthPlugin as def } from '../../../src/plugin/builtin/hmac-auth.ts';
import { parseHttpDate } from '../../../src/plugin/builtin/hmac-auth/signature.ts';
import { localSeen } from '../../../src/plugin/counters/seen.ts';
import { localCounters } from '../../../src/plugin/counters/local.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { h2Request, startWsUpstream, wsRoundTrip, type WsUpstream } from './auth-transports.ts';
import { confError } from '../helpers.ts';
import { signedHeaders, type SignOpts } from './hmac-auth-sign.ts';

type Echo = { headers: Record<string, string | undefined>; url: string; bodyLength: number };

const CANT = "client request can't be validated";

describe('hmac-auth', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let wsUp: WsUpstream;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startEcho('a');
    wsUp = await startWsUpstream();
    await gw.put('/consumers/jack', { username: 'jack', plugins: { 'hmac-auth': { key_id: 'jack-key', secret_key: 'jack-secret' } } });
    await gw.put('/consumers/rose', { username: 'rose' });
    const cred = await gw.admin('PUT', '/consumers/rose/credentials/rose-hmac', { plugins: { 'hmac-auth': { key_id: 'rose-key', secret_key: 'rose-secret' } } });
    expect(cred.status).toBeLessThan(300);
    await gw.put('/consumers/anon', { username: 'anon' });
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/1', { uri: '/hmac/*', plugins: { 'hmac-auth': {} }, upstream });
    await gw.put('/routes/2', {
      uri: '/strict/*',
      plugins: { 'hmac-auth': { allowed_algorithms: ['hmac-sha256'], clock_skew: 5, signed_headers: ['date', 'x-custom-a'], realm: 'my-hmac-realm' } },
      upstream,
    });
    await gw.put('/routes/3', { uri: '/body/*', plugins: { 'hmac-auth': { validate_request_body: true, max_req_body_size: 64 } }, upstream });
    await gw.put('/routes/4', { uri: '/hide/*', plugins: { 'hmac-auth': { hide_credentials: true } }, upstream });
    await gw.put('/routes/5', { uri: '/anon/*', plugins: { 'hmac-auth': { anonymous_consumer: 'anon' } }, upstream });
    await gw.put('/routes/6', { uri: '/ghost/*', plugins: { 'hmac-auth': { anonymous_consumer: 'ghost' } }, upstream });
    await gw.put('/routes/7', { uri: '/replay/*', plugins: { 'hmac-auth': { reject_replays: true, clock_skew: 2 } }, upstream });
    await gw.put('/routes/8', { uri: '/replay-full/*', plugins: { 'hmac-auth': { reject_replays: true } }, upstream });
    await gw.put('/routes/ws', { uri: '/ws/*', enable_websocket: true, plugins: { 'hmac-auth': {} }, upstream: { nodes: { [wsUp.addr]: 1 } } });
    await gw.synced();
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await wsUp?.close();
  });

  const send = (target: string, headers: Record<string, string>, init: { method?: string; body?: string } = {}) =>
    fetch(`${gw.url}${target}`, { method: init.method ?? 'GET', headers, body: init.body });
  const jack = { keyId: 'jack-key', secret: 'jack-secret' };

  async function expect401(res: Response, message: string, realm = 'hmac'): Promise<void> {
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(`hmac realm="${realm}"`);
    expect(await res.json()).toEqual({ message });
  }

  it('validates route and consumer confs like APISIX', async () => {
    expect(confError(def, {})).toBeNull();
    expect(confError(def, { clock_skew: 0 })).not.toBeNull();
    expect(confError(def, { allowed_algorithms: [] })).not.toBeNull();
    expect(confError(def, { allowed_algorithms: ['hmac-md5'] })).not.toBeNull();
    let r = await gw.admin('PUT', '/consumers/bad', { username: 'bad', plugins: { 'hmac-auth': { key_id: 'k' } } });
    expect(r.body).toEqual({
      error_msg: 'invalid plugins configuration: failed to check the configuration of plugin hmac-auth err: property "secret_key" is required',
    });
    r = await gw.admin('PUT', '/consumers/bad', { username: 'bad', plugins: { 'hmac-auth': { key_id: 'k'.repeat(320), secret_key: 's' } } });
    expect(r.status).toBe(400);
  });

  it('declares secret_key an encrypt_fields entry', () => {
    const codec = fieldCodecFromConfig({}, lookupFromPluginDefs((n) => (n === def.name ? def : undefined)));
    const value = { plugins: { 'hmac-auth': { key_id: 'jack-key', secret_key: 'jack-secret' } } };
    const stored = codec.encode('consumers', value, 'jack');
    const conf = (stored.plugins as Record<string, Record<string, string>>)['hmac-auth']!;
    expect(conf.key_id).toBe('jack-key');
    expect(conf.secret_key).not.toBe('jack-secret');
    expect(codec.decode('consumers', stored)).toEqual(value);
  });

  it('accepts requests signed independently with each algorithm and sends the consumer upstream', async () => {
    for (const algorithm of ['hmac-sha1', 'hmac-sha256', 'hmac-sha512']) {
      const target = '/hmac/x?b=2&a=%20';
      const headers = signedHeaders({ ...jack, target, algorithm });
      const r = await send(target, { ...headers, 'x-consumer-username': 'forged', 'x-consumer-custom-id': 'forged' });
      expect(r.status, algorithm).toBe(200);
      const echo = (await r.json()) as Echo;
      expect(echo.headers['x-consumer-username']).toBe('jack');
      expect(echo.headers['x-consumer-custom-id']).toBeUndefined();
      expect(echo.headers['x-credential-identifier']).toBeUndefined();
      expect(echo.headers.authorization).toBe(headers.authorization);
    }
    // Signed custom headers, keyId not first, POST.
    const headers = signedHeaders({ ...jack, method: 'POST', target: '/strict/y', signed: ['@request-target', 'date', 'x-custom-a'], headers: { 'x-custom-a': 'v a' } });
    headers.authorization = headers.authorization!.replace(/^Signature (keyId="[^"]*"),(algorithm="[^"]*")/, 'Signature $2,$1');
    const r = await send('/strict/y', headers, { method: 'POST', body: 'x' });
    expect(r.status).toBe(200);
    await r.arrayBuffer();
  });

  it('authenticates with a credential and sends its id upstream', async () => {
    const r = await send('/hmac/x', signedHeaders({ keyId: 'rose-key', secret: 'rose-secret', target: '/hmac/x' }));
    expect(r.status).toBe(200);
    const echo = (await r.json()) as Echo;
    expect(echo.headers['x-consumer-username']).toBe('rose');
    expect(echo.headers['x-credential-identifier']).toBe('rose-hmac');
  });

  it('rejects unsigned, tampered, skewed and replayed-late requests with APISIX bodies, never reaching the upstream', async () => {
    const before = up.seen.length;
    await expect401(await send('/hmac/x', {}), `${CANT}: missing Authorization header`);
    await expect401(await send('/hmac/x', { authorization: 'Bearer abc' }), `${CANT}: Authorization header does not start with 'Signature'`);
    const good = signedHeaders({ ...jack, target: '/hmac/x' });
    const cases: [string, Record<string, string>][] = [
      ['/hmac/x', { ...good, authorization: good.authorization!.replace(/,signature="[^"]*"/, '') }],
      ['/hmac/x', { ...good, authorization: good.authorization!.replace(/,algorithm="[^"]*"/, '') }],
      ['/hmac/x', signedHeaders({ keyId: 'nobody', secret: 'jack-secret', target: '/hmac/x' })],
      ['/hmac/x', signedHeaders({ ...jack, secret: 'wrong', target: '/hmac/x' })],
      // signed for another path / method / query
      ['/hmac/other', good],
      ['/hmac/x?admin=1', good],
      ['/hmac/x', { ...good, authorization: good.authorization!.replace('algorithm="hmac-sha256"', 'algorithm="ljlj"') }],
      ['/hmac/x', { ...good, date: 'adfsdf' }],
      ['/hmac/x', { authorization: good.authorization! }],
      // a request captured 400 s ago (default clock_skew 300) or 10 s ago on a 5 s route
      ['/hmac/x', signedHeaders({ ...jack, target: '/hmac/x', dateOffsetSec: -400 })],
      ['/hmac/x', signedHeaders({ ...jack, target: '/hmac/x', dateOffsetSec: 400 })],
      // date not among the signed headers (default signed_headers ["date"])
      ['/hmac/x', signedHeaders({ ...jack, target: '/hmac/x', signed: ['@request-target'] })],
    ];
    for (const [target, headers] of cases) await expect401(await send(target, headers), CANT);
    const strict = (o: Partial<SignOpts>) =>
      signedHeaders({ ...jack, target: '/strict/x', signed: ['@request-target', 'date', 'x-custom-a'], headers: { 'x-custom-a': 'a' }, ...o });
    await expect401(await send('/strict/x', strict({ dateOffsetSec: -10 })), CANT, 'my-hmac-realm');
    await expect401(await send('/strict/x', strict({ algorithm: 'hmac-sha512' })), CANT, 'my-hmac-realm');
    await expect401(await send('/strict/x', strict({ signed: ['@request-target', 'date'] })), CANT, 'my-hmac-realm');
    // a signed header's value changed in flight
    await expect401(await send('/strict/x', { ...strict({}), 'x-custom-a': 'b' }), CANT, 'my-hmac-realm');
    expect(up.seen.length).toBe(before);
    const ok = await send('/strict/x', strict({}));
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
  });

  it('validates the body digest and bounds the body size', async () => {
    const body = '{"name":"small"}';
    const digest = 'SHA-256=' + createHash('sha256').update(body).digest('base64');
    const before = up.seen.length;
    const post = (headers: Record<string, string>, b = body) => send('/body/x', headers, { method: 'POST', body: b });
    const signed = (extra: Record<string, string> = {}) => signedHeaders({ ...jack, method: 'POST', target: '/body/x', headers: extra });
    await expect401(await post(signed()), CANT);
    await expect401(await post(signed({ digest: 'SHA-256=' + createHash('sha256').update('other').digest('base64') })), CANT);
    await expect401(await post(signed({ digest }), body + ' '), CANT);
    const big = 'x'.repeat(100);
    let r = await post(signed({ digest: 'SHA-256=' + createHash('sha256').update(big).digest('base64') }), big);
    expect(r.status).toBe(413);
    expect(await r.json()).toEqual({ message: 'request size 100 is greater than the maximum size 64 allowed' });
    expect(up.seen.length).toBe(before);
    r = await post(signed({ digest }));
    expect(r.status).toBe(200);
    const echo = (await r.json()) as Echo;
    expect(echo.bodyLength).toBe(body.length);
    expect(echo.headers['x-consumer-username']).toBe('jack');
  });

  it('hide_credentials removes the Authorization header', async () => {
    const r = await send('/hide/x', signedHeaders({ ...jack, target: '/hide/x' }));
    expect(r.status).toBe(200);
    const echo = (await r.json()) as Echo;
    expect(echo.headers.authorization).toBeUndefined();
    expect(echo.headers['x-consumer-username']).toBe('jack');
  });

  it('falls back to the anonymous consumer, or 401 when it does not exist', async () => {
    let r = await send('/anon/x', { authorization: 'Signature keyId="x"' });
    expect(r.status).toBe(200);
    expect(((await r.json()) as Echo).headers['x-consumer-username']).toBe('anon');
    r = await send('/anon/x', signedHeaders({ ...jack, target: '/anon/x' }));
    expect(((await r.json()) as Echo).headers['x-consumer-username']).toBe('jack');
    await expect401(await send('/ghost/x', {}), 'Invalid user authorization');
  });

  it('reject_replays: a signature is accepted once; by default a replay within clock_skew passes, as in APISIX', async () => {
    const plain = signedHeaders({ ...jack, target: '/hmac/again' });
    for (let i = 0; i < 2; i++) {
      const r = await send('/hmac/again', plain);
      expect(r.status).toBe(200);
      await r.arrayBuffer();
    }
    const before = up.seen.length;
    const h = signedHeaders({ ...jack, target: '/replay/x' });
    let r = await send('/replay/x', h);
    expect(r.status).toBe(200);
    expect(((await r.json()) as Echo).headers['x-consumer-username']).toBe('jack');
    await expect401(await send('/replay/x', h), CANT);
    // The same signature without its base64 padding (nginx's decoder accepts both) is still the same signature.
    const padded = signedHeaders({ ...jack, target: '/replay/y' });
    expect(padded.authorization).toMatch(/=",?$|="$/);
    const unpadded = { ...padded, authorization: padded.authorization!.replace(/=+"$/, '"') };
    // A refused request (a signed header changed in flight) does not use up the genuine signature.
    await expect401(await send('/replay/y', { ...padded, date: new Date(Date.now() - 1000).toUTCString() }), CANT);
    r = await send('/replay/y', padded);
    expect(r.status).toBe(200);
    await r.arrayBuffer();
    await expect401(await send('/replay/y', unpadded), CANT);
    expect(up.seen.length).toBe(before + 2);
  });

  it('reject_replays: once the Date leaves clock_skew, a replay is still refused (by the skew check)', async () => {
    const h = signedHeaders({ ...jack, target: '/replay/late' });
    const r = await send('/replay/late', h);
    expect(r.status).toBe(200);
    await r.arrayBuffer();
    // clock_skew 2: the Date (whole seconds) is accepted until 3 s after it.
    await new Promise((res) => setTimeout(res, Math.max(0, Date.parse(h.date!) + 3100 - Date.now())));
    await expect401(await send('/replay/late', h), CANT);
    await expect401(await send('/replay/late', signedHeaders({ ...jack, target: '/replay/late', dateOffsetSec: -5 })), CANT);
  });

  it('reject_replays: a full replay store refuses new signatures (503) and still refuses replays; rate-limit keys do not flush it', async () => {
    localSeen.sweep();
    const capacity = localSeen.capacity;
    localSeen.capacity = localSeen.size + 2;
    try {
      const a = signedHeaders({ ...jack, target: '/replay-full/a' });
      const b = signedHeaders({ ...jack, target: '/replay-full/b' });
      const c = signedHeaders({ ...jack, target: '/replay-full/c' });
      for (const h of [a, b]) {
        const r = await send(h === a ? '/replay-full/a' : '/replay-full/b', h);
        expect(r.status).toBe(200);
        await r.arrayBuffer();
      }
      // Keys a client chooses in the rate-limit counters (limit-count's key) do not touch remembered signatures.
      for (let i = 0; i < 100; i++) localCounters.incr(`limit-count flood ${i}`, 60_000, 1, 'fixed');
      const before = up.seen.length;
      const full = await send('/replay-full/c', c);
      expect(full.status).toBe(503);
      expect(await full.json()).toEqual({ message: 'too many recent signatures to check against replays, retry later' });
      await expect401(await send('/replay-full/a', a), CANT);
      await expect401(await send('/replay-full/b', b), CANT);
      expect(up.seen.length).toBe(before);
    } finally {
      localSeen.capacity = capacity;
    }
    const r = await send('/replay-full/c', signedHeaders({ ...jack, target: '/replay-full/c' }));
    expect(r.status).toBe(200);
    await r.arrayBuffer();
  });

  it('parses the three HTTP-date forms nginx accepts', () => {
    const t = Date.UTC(1994, 10, 6, 8, 49, 37) / 1000;
    expect(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT')).toBe(t);
    expect(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT')).toBe(t);
    expect(parseHttpDate('Sun Nov  6 08:49:37 1994')).toBe(t);
    expect(parseHttpDate('Sun, 31 Feb 1994 08:49:37 GMT')).toBeNull();
    expect(parseHttpDate('1994-11-06T08:49:37Z')).toBeNull();
  });

  it('guards h2c requests and WebSocket upgrades the same way', async () => {
    const target = '/hmac/h2?x=1';
    let r = await h2Request(gw.url, { ':method': 'GET', ':path': target, ...signedHeaders({ ...jack, target }) });
    expect(r.status).toBe(200);
    expect((JSON.parse(r.body) as Echo).headers['x-consumer-username']).toBe('jack');
    r = await h2Request(gw.url, { ':method': 'GET', ':path': target, ...signedHeaders({ ...jack, target: '/hmac/h2' }) });
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('hmac realm="hmac"');
    expect(JSON.parse(r.body)).toEqual({ message: CANT });

    const wsUrl = `ws://127.0.0.1:${gw.port}/ws/x`;
    const before = wsUp.upgrades.length;
    const refused = await wsRoundTrip(wsUrl, signedHeaders({ ...jack, secret: 'wrong', target: '/ws/x' }));
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expect(refused.status).toBe(401);
      expect(JSON.parse(refused.body)).toEqual({ message: CANT });
    }
    expect(wsUp.upgrades.length).toBe(before);
    const ok = await wsRoundTrip(wsUrl, signedHeaders({ ...jack, target: '/ws/x' }));
    expect(ok).toEqual({ ok: true, echo: 'echo:ping' });
    expect(wsUp.upgrades.at(-1)!['x-consumer-username']).toBe('jack');
  });
});
