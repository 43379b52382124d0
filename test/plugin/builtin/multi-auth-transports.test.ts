// multi-auth over h2c and on WebSocket upgrades: key-auth, ldap-auth (real slapd, so a delegate answers
// asynchronously) and jwt-auth tried in order; the first that authenticates wins on every transport, and an
// upgrade every delegate refuses never reaches the upstream.
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startSlapd, SLAPD_USERS, type Slapd } from '../../helpers/slapd.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { h2Request, startWsUpstream, wsRoundTrip, type WsUpstream } from './auth-transports.ts';

type Echo = { headers: Record<string, string | undefined> };
const basic = (user: string, pw: string) => 'Basic ' + Buffer.from(`${user}:${pw}`).toString('base64');
const JWT_SECRET = 'jwt-secret-0123456789-abcdefghij';
const FAILED = '{"message":"Authorization Failed"}\n';

describe('multi-auth over h2c and WebSocket upgrades', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let wsUp: WsUpstream;
  let slapd: Slapd;
  let token: string;

  beforeAll(async () => {
    [gw, up, wsUp, slapd] = await Promise.all([startTestGateway(), startEcho('a'), startWsUpstream(), startSlapd()]);
    const roseDn = await slapd.addUser('rose', 'rose-ldap-pw');
    await gw.put('/consumers/jack', { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } });
    await gw.put('/consumers/rose', { username: 'rose', plugins: { 'ldap-auth': { user_dn: roseDn } } });
    await gw.put('/consumers/tom', { username: 'tom', plugins: { 'jwt-auth': { key: 'tom-key', secret: JWT_SECRET } } });
    const plugins = {
      'multi-auth': {
        auth_plugins: [
          { 'key-auth': { hide_credentials: true } },
          { 'ldap-auth': { base_dn: SLAPD_USERS, ldap_uri: slapd.ldapAddr, uid: 'cn' } },
          { 'jwt-auth': {} },
        ],
      },
    };
    await gw.put('/routes/1', { uri: '/m/*', plugins, upstream: { nodes: { [up.addr]: 1 } } });
    await gw.put('/routes/ws', { uri: '/ws/*', enable_websocket: true, plugins, upstream: { nodes: { [wsUp.addr]: 1 } } });
    token = await new SignJWT({ key: 'tom-key' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(JWT_SECRET));
  }, 30_000);
  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await wsUp?.close();
    await slapd?.stop();
  });

  it('h2c: each delegate can authenticate; its consumer goes upstream', async () => {
    const cases: [Record<string, string>, string][] = [
      [{ apikey: 'jack-key' }, 'jack'],
      [{ authorization: basic('rose', 'rose-ldap-pw') }, 'rose'],
      [{ authorization: `Bearer ${token}` }, 'tom'],
    ];
    for (const [headers, consumer] of cases) {
      const r = await h2Request(gw.url, { ':method': 'GET', ':path': '/m/h2', 'x-consumer-username': 'forged', ...headers });
      expect(r.status, consumer).toBe(200);
      const echo = JSON.parse(r.body) as Echo;
      expect(echo.headers['x-consumer-username']).toBe(consumer);
      expect(echo.headers.apikey).toBeUndefined();
    }
  });

  it('h2c: all delegates failing is 401 Authorization Failed, never upstream', async () => {
    const before = up.seen.length;
    for (const headers of [{}, { apikey: 'nope' }, { authorization: basic('rose', 'wrong') }, { authorization: 'Bearer a.b.c' }]) {
      const r = await h2Request(gw.url, { ':method': 'GET', ':path': '/m/h2', ...headers });
      expect(r.status, JSON.stringify(headers)).toBe(401);
      expect(r.body).toBe(FAILED);
    }
    expect(up.seen.length).toBe(before);
  });

  it('WebSocket: refused upgrades never reach the upstream; each delegate can open the tunnel', async () => {
    const url = `ws://127.0.0.1:${gw.port}/ws/x`;
    const before = wsUp.upgrades.length;
    for (const headers of [{}, { authorization: basic('rose', 'wrong') }, { authorization: 'Bearer a.b.c' }] as Record<string, string>[]) {
      const res = await wsRoundTrip(url, headers);
      expect(res, JSON.stringify(headers)).toEqual({ ok: false, status: 401, body: FAILED });
    }
    expect(wsUp.upgrades.length).toBe(before);
    const cases: [Record<string, string>, string][] = [
      [{ apikey: 'jack-key' }, 'jack'],
      [{ authorization: basic('rose', 'rose-ldap-pw') }, 'rose'],
      [{ authorization: `Bearer ${token}` }, 'tom'],
    ];
    for (const [headers, consumer] of cases) {
      const res = await wsRoundTrip(url, { 'x-consumer-username': 'forged', ...headers });
      expect(res, consumer).toEqual({ ok: true, echo: 'echo:ping' });
      expect(wsUp.upgrades.at(-1)!['x-consumer-username']).toBe(consumer);
    }
  });
});
