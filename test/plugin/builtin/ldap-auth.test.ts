import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { escapeDnValue, ldapAuthPlugin as def, parseBasic } from '../../../src/plugin/builtin/ldap-auth.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { freePort } from '../../helpers/ports.ts';
import { startSlapd, SLAPD_USERS, type Slapd } from '../../helpers/slapd.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { confError } from '../helpers.ts';

const basic = (user: string, pw: string) => 'Basic ' + Buffer.from(`${user}:${pw}`).toString('base64');

describe('ldap-auth against a real slapd', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let slapd: Slapd;
  let userDn: string;

  beforeAll(async () => {
    [gw, up, slapd] = await Promise.all([startTestGateway(), startEcho('a'), startSlapd()]);
    userDn = await slapd.addUser('user01', 'password1');
    await slapd.addUser('nobody', 'password2');
    await slapd.addUser('o,dd+name', 'password3');
    await gw.put('/consumers/user01', { username: 'user01', plugins: { 'ldap-auth': { user_dn: userDn } } });
    await gw.put('/consumers/odd', { username: 'odd', plugins: { 'ldap-auth': { user_dn: `cn=o\\,dd\\+name,${SLAPD_USERS}` } } });
    const upstream = { nodes: { [up.addr]: 1 } };
    const conf = { base_dn: SLAPD_USERS, ldap_uri: slapd.ldapAddr, uid: 'cn' };
    await gw.put('/routes/1', { uri: '/ldap/*', plugins: { 'ldap-auth': conf }, upstream });
    await gw.put('/routes/2', { uri: '/hide/*', plugins: { 'ldap-auth': { ...conf, hide_credentials: true, realm: 'corp' } }, upstream });
    await gw.put('/routes/3', { uri: '/tls/*', plugins: { 'ldap-auth': { ...conf, ldap_uri: slapd.ldapsAddr, use_tls: true } }, upstream });
    await gw.put('/routes/4', {
      uri: '/tlsv/*',
      plugins: { 'ldap-auth': { ...conf, ldap_uri: slapd.ldapsAddr, use_tls: true, tls_verify: true } },
      upstream,
    });
    await gw.put('/routes/5', { uri: '/down/*', plugins: { 'ldap-auth': { ...conf, ldap_uri: `127.0.0.1:${await freePort()}` } }, upstream });
  }, 30_000);
  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await slapd?.stop();
  });

  const call = async (p: string, auth?: string) => {
    const r = await fetch(`${gw.url}${p}`, { headers: auth === undefined ? {} : { authorization: auth } });
    const text = await r.text();
    return { status: r.status, text, challenge: r.headers.get('www-authenticate'), json: () => JSON.parse(text) };
  };

  it('validates route and consumer confs', () => {
    expect(confError(def, { base_dn: 'dc=x' })).not.toBeNull();
    expect(confError(def, { base_dn: 123, ldap_uri: '127.0.0.1:1389' })).not.toBeNull();
    expect(confError(def, { base_dn: 'dc=x', ldap_uri: 'h:1', realm: 'a"b' })).not.toBeNull();
    expect(confError(def, { base_dn: 'dc=x', ldap_uri: 'h:1' })).toBeNull();
  });

  it('parses Basic credentials like APISIX and escapes DN values', () => {
    expect(parseBasic('Basic Zm9vOmZvbwo=')).toEqual({ user: 'foo', password: 'foo' });
    expect(parseBasic('basic ' + Buffer.from('u:p:q').toString('base64'))).toEqual({ user: 'u', password: 'p:q' });
    expect(parseBasic('Basic aca_a')).toBeNull();
    expect(parseBasic('Basic Zm9v')).toBeNull();
    expect(parseBasic('Bad_header Zm9vOmZvbwo=')).toBeNull();
    expect(escapeDnValue('a,b+c')).toBe('a\\,b\\+c');
    expect(escapeDnValue(' #x ')).toBe('\\ #x\\ ');
  });

  it('answers APISIX 401 bodies with the Basic challenge', async () => {
    let r = await call('/ldap/x');
    expect([r.status, r.text, r.challenge]).toEqual([401, '{"message":"Missing authorization in request"}\n', 'Basic realm="ldap"']);
    r = await call('/ldap/x', 'Bad_header Zm9vOmZvbwo=');
    expect([r.status, r.text]).toEqual([401, '{"message":"Invalid authorization in request"}\n']);
    r = await call('/ldap/x', 'Basic Zm9v');
    expect([r.status, r.text]).toEqual([401, '{"message":"Invalid authorization in request"}\n']);
    r = await call('/ldap/x', basic('user01', 'wrong'));
    expect([r.status, r.text]).toEqual([401, '{"message":"Invalid user authorization"}\n']);
    r = await call('/ldap/x', basic('ghost', 'password1'));
    expect(r.status).toBe(401);
    // an empty password would be an unauthenticated bind, which LDAP accepts
    r = await call('/ldap/x', basic('user01', ''));
    expect([r.status, r.text]).toEqual([401, '{"message":"Invalid user authorization"}\n']);
    expect(up.seen.length).toBe(0);
  });

  it('binds as the user and attaches the consumer whose user_dn matches', async () => {
    const r = await call('/ldap/x', basic('user01', 'password1'));
    expect(r.status).toBe(200);
    const echo = r.json() as { headers: Record<string, string> };
    expect(echo.headers['x-consumer-username']).toBe('user01');
    expect(echo.headers.authorization).toBe(basic('user01', 'password1'));
    // escaped special characters reach slapd and match the consumer's DN
    const odd = await call('/ldap/x', basic('o,dd+name', 'password3'));
    expect(odd.status).toBe(200);
    expect((odd.json() as { headers: Record<string, string> }).headers['x-consumer-username']).toBe('odd');
  });

  it('a valid LDAP user without a consumer is refused', async () => {
    const r = await call('/ldap/x', basic('nobody', 'password2'));
    expect([r.status, r.text]).toEqual([401, '{"message":"Invalid user authorization"}\n']);
  });

  it('hide_credentials strips Authorization; realm is configurable', async () => {
    let r = await call('/hide/x', basic('user01', 'password1'));
    expect(r.status).toBe(200);
    expect((r.json() as { headers: Record<string, string> }).headers.authorization).toBeUndefined();
    r = await call('/hide/x');
    expect(r.challenge).toBe('Basic realm="corp"');
  });

  it('re-binds pooled connections across many requests', async () => {
    for (let i = 0; i < 20; i++) {
      const ok = i % 2 === 0;
      const r = await call('/ldap/x', basic('user01', ok ? 'password1' : 'bad'));
      expect(r.status).toBe(ok ? 200 : 401);
    }
  });

  it('LDAPS with use_tls; tls_verify refuses the self-signed certificate', async () => {
    let r = await call('/tls/x', basic('user01', 'password1'));
    expect(r.status).toBe(200);
    r = await call('/tls/x', basic('user01', 'bad'));
    expect(r.status).toBe(401);
    r = await call('/tlsv/x', basic('user01', 'password1'));
    expect([r.status, r.text]).toEqual([401, '{"message":"Invalid user authorization"}\n']);
  });

  it('an unreachable LDAP server gives 401', async () => {
    const r = await call('/down/x', basic('user01', 'password1'));
    expect([r.status, r.text]).toEqual([401, '{"message":"Invalid user authorization"}\n']);
  });
});
