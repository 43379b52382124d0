// ldap-auth over h2c and on WebSocket upgrades against a real slapd: the bind decides as over HTTP/1.1, and a
// refused upgrade never reaches the upstream.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startSlapd, SLAPD_USERS, type Slapd } from '../../helpers/slapd.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { h2Request, startWsUpstream, wsRoundTrip, type WsUpstream } from './auth-transports.ts';

type Echo = { headers: Record<string, string | undefined> };
const basic = (user: string, pw: string) => 'Basic ' + Buffer.from(`${user}:${pw}`).toString('base64');

describe('ldap-auth over h2c and WebSocket upgrades (real slapd)', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let wsUp: WsUpstream;
  let slapd: Slapd;

  beforeAll(async () => {
    [gw, up, wsUp, slapd] = await Promise.all([startTestGateway(), startEcho('a'), startWsUpstream(), startSlapd()]);
    const userDn = await slapd.addUser('h2user', 'h2-secret');
    await slapd.addUser('stranger', 'stranger-pw');
    await gw.put('/consumers/h2user', { username: 'h2user', plugins: { 'ldap-auth': { user_dn: userDn } } });
    const conf = { base_dn: SLAPD_USERS, ldap_uri: slapd.ldapAddr, uid: 'cn' };
    await gw.put('/routes/1', { uri: '/ldap/*', plugins: { 'ldap-auth': { ...conf, hide_credentials: true } }, upstream: { nodes: { [up.addr]: 1 } } });
    await gw.put('/routes/ws', { uri: '/ws/*', enable_websocket: true, plugins: { 'ldap-auth': conf }, upstream: { nodes: { [wsUp.addr]: 1 } } });
  }, 30_000);
  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await wsUp?.close();
    await slapd?.stop();
  });

  it('h2c: a user slapd binds is the consumer; missing, malformed and wrong credentials are 401', async () => {
    let r = await h2Request(gw.url, { ':method': 'GET', ':path': '/ldap/h2', authorization: basic('h2user', 'h2-secret'), 'x-consumer-username': 'forged' });
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.body) as Echo;
    expect(echo.headers['x-consumer-username']).toBe('h2user');
    expect(echo.headers.authorization).toBeUndefined();

    const seen = up.seen.length;
    const cases: [Record<string, string>, string][] = [
      [{}, 'Missing authorization in request'],
      [{ authorization: 'Basic aca_a' }, 'Invalid authorization in request'],
      [{ authorization: basic('h2user', 'wrong') }, 'Invalid user authorization'],
      // slapd binds this user, but no consumer carries its DN
      [{ authorization: basic('stranger', 'stranger-pw') }, 'Invalid user authorization'],
    ];
    for (const [headers, message] of cases) {
      r = await h2Request(gw.url, { ':method': 'GET', ':path': '/ldap/h2', ...headers });
      expect(r.status, JSON.stringify(headers)).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Basic realm="ldap"');
      expect(JSON.parse(r.body)).toEqual({ message });
    }
    expect(up.seen.length).toBe(seen);
  });

  it('WebSocket: a refused bind refuses the upgrade before the upstream; a good one opens the tunnel', async () => {
    const url = `ws://127.0.0.1:${gw.port}/ws/x`;
    const before = wsUp.upgrades.length;
    for (const [headers, message] of [
      [{}, 'Missing authorization in request'],
      [{ authorization: basic('h2user', 'wrong') }, 'Invalid user authorization'],
    ] as [Record<string, string>, string][]) {
      const res = await wsRoundTrip(url, headers);
      expect(res.ok).toBe(false);
      if (!res.ok) {
        expect(res.status).toBe(401);
        expect(JSON.parse(res.body)).toEqual({ message });
      }
    }
    expect(wsUp.upgrades.length).toBe(before);
    const ok = await wsRoundTrip(url, { authorization: basic('h2user', 'h2-secret'), 'x-consumer-username': 'forged' });
    expect(ok).toEqual({ ok: true, echo: 'echo:ping' });
    const seen = wsUp.upgrades.at(-1)!;
    expect(seen['x-consumer-username']).toBe('h2user');
    // without hide_credentials the Authorization header travels on
    expect(seen.authorization).toBe(basic('h2user', 'h2-secret'));
  });
});
