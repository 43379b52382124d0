import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cookieTime, csrfPlugin as def, luaNumber } from '../../../src/plugin/builtin/csrf.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { curl } from '../../helpers/curl.ts';
import { confError } from '../helpers.ts';

// Tokens issued by APISIX itself for key "userkey" (t/plugin/csrf.t TEST 8, 9, 11): one with a forged
// signature, one issued for 2053 and one issued in 2022.
const APISIX_FORGED =
  'eyJyYW5kb20iOjAuMTYwOTgzMDYwMTg0NDksInNpZ24iOiI2YTEyYmViYTI4MzAyNDg4MDRmNGU0N2VkZDY5MWFmNjg5N2IyNzQ4YTY1YWMwMDJiMGFjMzFlN2NlMDdlZTViIiwiZXhwaXJlcyI6MTc0MzExOTkxMX0=';
const APISIX_VALID =
  'eyJyYW5kb20iOjAuNDI5ODYzMTk3MTYxMzksInNpZ24iOiI0ODRlMDY4NTkxMWQ5NmJhMDc5YzQ1ZGI0OTE2NmZkYjQ0ODhjODVkNWQ0NmE1Y2FhM2UwMmFhZDliNjE5OTQ2IiwiZXhwaXJlcyI6MjY0MzExOTYyNH0=';
const APISIX_2022 =
  'eyJyYW5kb20iOjAuMDY3NjAxMDQwMDM5MzI4LCJzaWduIjoiOTE1Yjg2MjBhNTg1N2FjZmIzNjIxOTNhYWVlN2RkYjY5NmM0NWYwZjE5YjY5Zjg3NjM4ZTllNGNjNjYxYjQwNiIsImV4cGlyZXMiOjE2NDMxMjAxOTN9';

function tokenOf(setCookie: string | undefined, name = 'apisix-csrf-token'): string {
  const m = new RegExp(`^${name}=([^;]+);path=/;SameSite=Lax;Expires=(.+)$`).exec(setCookie ?? '');
  if (m === null) throw new Error(`unexpected Set-Cookie: ${setCookie}`);
  return m[1]!;
}

function post(url: string, headers: Record<string, string>): Promise<Response> {
  return fetch(url, { method: 'POST', headers });
}

describe('csrf', () => {
  let gw: TestGateway;
  let up: EchoServer;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startEcho('content');
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/1', { uri: '/c', plugins: { csrf: { key: 'userkey', expires: 1000000000 } }, upstream });
    await gw.put('/routes/2', { uri: '/short', plugins: { csrf: { key: 'userkey', expires: 1 } }, upstream });
    await gw.put('/routes/3', { uri: '/forever', plugins: { csrf: { key: 'userkey', expires: 0 } }, upstream });
    await gw.put('/routes/4', { uri: '/named', plugins: { csrf: { key: 'other-key', name: '_csrf' } }, upstream });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  it('validates confs like APISIX', () => {
    expect(confError(def, { key: 'k', name: '_csrf', expires: 3600 })).toBeNull();
    expect(confError(def, {})).not.toBeNull();
    expect(confError(def, { key: 'k', expires: 1.5 })).not.toBeNull();
  });

  it('safe methods pass and every response carries a fresh token cookie', async () => {
    const r = await curl(`${gw.url}/c`);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).url).toBe('/c');
    const setCookie = r.headers['set-cookie']?.[0];
    tokenOf(setCookie);
    // Expires is nginx's cookie_time of now + expires.
    const expiresAt = /Expires=(.+)$/.exec(setCookie!)![1]!;
    const now = Math.floor(Date.now() / 1000) + 1000000000;
    expect([cookieTime(now - 2), cookieTime(now - 1), cookieTime(now)]).toContain(expiresAt);
    expect((await curl(`${gw.url}/c`, ['-X', 'OPTIONS'])).status).toBe(200);
    expect((await curl(`${gw.url}/c`, ['-I'])).status).toBe(200);
  });

  it('rejects unsafe methods with the APISIX 401 bodies and never reaches the upstream', async () => {
    const before = up.seen.length;
    const cases: [Record<string, string>, string][] = [
      [{}, 'no csrf token in headers'],
      [{ 'apisix-csrf-token': 'wrongtoken' }, 'no csrf cookie'],
      [{ cookie: 'apisix-csrf-token=testcookie' }, 'no csrf token in headers'],
      [{ 'apisix-csrf-token': 'wrongtoken', cookie: 'apisix-csrf-token=testcookie' }, 'csrf token mismatch'],
      [{ 'apisix-csrf-token': APISIX_FORGED, cookie: `apisix-csrf-token=${APISIX_FORGED}` }, 'Failed to verify the csrf token signature'],
      [{ 'apisix-csrf-token': 'not base64!', cookie: 'apisix-csrf-token=not base64!' }, 'Failed to verify the csrf token signature'],
    ];
    for (const [headers, error_msg] of cases) {
      const r = await post(`${gw.url}/c`, headers);
      expect(r.status).toBe(401);
      expect(await r.json()).toEqual({ error_msg });
    }
    const viaCurl = await curl(`${gw.url}/c`, ['-X', 'POST']);
    expect(viaCurl.status).toBe(401);
    expect(JSON.parse(viaCurl.body)).toEqual({ error_msg: 'no csrf token in headers' });
    // header_filter runs on local answers too: the rejected client still gets a token to retry with.
    tokenOf(viaCurl.headers['set-cookie']?.[0]);
    expect(up.seen.length).toBe(before);
  });

  it('accepts a token issued by APISIX (same key), and rejects it under another key', async () => {
    const r = await curl(`${gw.url}/c`, ['-X', 'POST', '-H', `apisix-csrf-token: ${APISIX_VALID}`, '-b', `apisix-csrf-token=${APISIX_VALID}`]);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).method).toBe('POST');
    const other = await post(`${gw.url}/named`, { _csrf: APISIX_VALID, cookie: `_csrf=${APISIX_VALID}` });
    expect(other.status).toBe(401);
  });

  it('issues tokens APISIX can verify: sha256 over the Lua-formatted fields, checked with sha256sum', async () => {
    const r = await fetch(`${gw.url}/named`);
    const token = tokenOf(r.headers.get('set-cookie') ?? undefined, '_csrf');
    const json = Buffer.from(token, 'base64').toString('utf8');
    const randomText = /"random":([^,}]+)/.exec(json)![1]!;
    const expiresText = /"expires":([^,}]+)/.exec(json)![1]!;
    const { sign } = JSON.parse(json) as { sign: string };
    // What APISIX computes: tostring() of the decoded numbers, i.e. C's %.14g, taken from printf(1).
    const printf = (v: string) => execFileSync('printf', ['%.14g', v], { encoding: 'utf8' });
    const signed = `{expires:${printf(expiresText)},random:${printf(randomText)},key:other-key}`;
    const expected = execFileSync('sha256sum', { input: signed, encoding: 'utf8' }).split(' ')[0];
    expect(sign).toBe(expected);
    const ok = await curl(`${gw.url}/named`, ['-X', 'PUT', '-H', `_csrf: ${token}`, '-b', `a=1; _csrf=${token}`]);
    expect(ok.status).toBe(200);
  });

  it('expires: old tokens fail, 0 never expires', async () => {
    const old = { 'apisix-csrf-token': APISIX_2022, cookie: `apisix-csrf-token=${APISIX_2022}` };
    expect((await post(`${gw.url}/short`, old)).status).toBe(401);
    expect((await post(`${gw.url}/forever`, old)).status).toBe(200);
    // A token of our own whose issue time is 10 s in the past, signed independently of the plugin.
    const expires = Math.floor(Date.now() / 1000) - 10;
    const sign = createHash('sha256').update(`{expires:${expires},random:0.25,key:userkey}`).digest('hex');
    const stale = Buffer.from(JSON.stringify({ random: 0.25, expires, sign })).toString('base64');
    const r = await post(`${gw.url}/short`, { 'apisix-csrf-token': stale, cookie: `apisix-csrf-token=${stale}` });
    expect(r.status).toBe(401);
    expect(await r.json()).toEqual({ error_msg: 'Failed to verify the csrf token signature' });
    expect((await post(`${gw.url}/c`, { 'apisix-csrf-token': stale, cookie: `apisix-csrf-token=${stale}` })).status).toBe(200);
  });

  it('formats numbers as Lua does (%.14g)', () => {
    for (const v of ['0.42986319716139', '1e-05', '1e+15', '0.5', '2643119624', '0.00012345678901234', '1.2345678901235e+14']) {
      expect(luaNumber(Number(v))).toBe(execFileSync('printf', ['%.14g', v], { encoding: 'utf8' }));
    }
    expect(luaNumber(0.1 + 0.2)).toBe('0.3');
  });
});
