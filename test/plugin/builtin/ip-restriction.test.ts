// ip-restriction end to end: curl -4 / -6 clients against a gateway listening on 127.0.0.1, [::1] and a
// dual-stack `::` socket (where an IPv4 client is reported as ::ffff:127.0.0.1).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ipRestrictionPlugin as def } from '../../../src/plugin/builtin/ip-restriction.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { curl } from '../../helpers/curl.ts';
import { freePort } from '../../helpers/ports.ts';
import { confError } from '../helpers.ts';

describe('ip-restriction through the gateway', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let v4: string;
  let v6: string;
  let dual: number;

  beforeAll(async () => {
    const p4 = await freePort('127.0.0.1');
    const p6 = await freePort('::1');
    dual = await freePort('::');
    gw = await startTestGateway({
      config: { apisix: { node_listen: [{ ip: '127.0.0.1', port: p4 }, { ip: '::1', port: p6 }, { ip: '::', port: dual }] } },
    });
    v4 = `http://127.0.0.1:${p4}`;
    v6 = `http://[::1]:${p6}`;
    up = await startEcho('ip');
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/wl4', { uri: '/wl4', plugins: { 'ip-restriction': { whitelist: ['127.0.0.0/24'] } }, upstream });
    await gw.put('/routes/wl6', { uri: '/wl6', plugins: { 'ip-restriction': { whitelist: ['::1/128', '10.0.0.0/8'] } }, upstream });
    await gw.put('/routes/bl', {
      uri: '/bl',
      plugins: { 'ip-restriction': { blacklist: ['127.0.0.1', '0:0:0:0:0:0:0:1'], message: 'go away', response_code: 404 } },
      upstream,
    });
    await gw.put('/routes/wl8', { uri: '/wl8', plugins: { 'ip-restriction': { whitelist: ['127.0.0.0/8'] } }, upstream });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  /** curl -4/-6; returns status and parsed body, and whether the upstream saw the request. */
  async function call(base: string, path: string, family: '-4' | '-6'): Promise<{ status: number; body: any; reached: boolean }> {
    const before = up.seen.length;
    const r = await curl(base + path, [family]);
    let body: any = r.body;
    try {
      body = JSON.parse(r.body);
    } catch {
      /* not JSON */
    }
    return { status: r.status, body, reached: up.seen.length > before };
  }

  it('matches an IPv4-mapped address (what stream sessions on a dual-stack socket report) against IPv4 entries', () => {
    const allow = def.create({ whitelist: ['127.0.0.0/8'] }, {} as never) as any;
    const deny = def.create({ blacklist: ['127.0.0.1'], response_code: 404, message: 'no' }, {} as never) as any;
    expect(allow.preread({ remoteAddr: '::ffff:127.0.0.1' })).toBeUndefined();
    expect(allow.preread({ remoteAddr: '::ffff:10.0.0.1' })).toEqual({ status: 403, body: { message: 'Your IP address is not allowed' } });
    expect(deny.preread({ remoteAddr: '::ffff:127.0.0.1' })).toEqual({ status: 404, body: { message: 'no' } });
    expect(allow.preread({ remoteAddr: '' })).toBeDefined();
  });

  it('refuses invalid entries like APISIX', () => {
    expect(confError(def, { whitelist: ['127.0.0.1'] })).toBeNull();
    expect(confError(def, { whitelist: ['2001:db8::/32'] })).toBeNull();
    expect(confError(def, { whitelist: ['127.0.0.256'] })).toMatch(/invalid ip address: 127\.0\.0\.256/);
    expect(confError(def, { blacklist: ['::1/129'] })).toMatch(/invalid ip address/);
    expect(confError(def, { blacklist: ['10.0.0.0/33'] })).toMatch(/invalid ip address/);
    expect(confError(def, { whitelist: ['1.2.3.4'], response_code: 500 })).not.toBeNull();
  });

  it('whitelist: an IPv4 client inside the CIDR passes, an IPv6 client is rejected with 403 and the APISIX body', async () => {
    const ok = await call(v4, '/wl4', '-4');
    expect(ok.status).toBe(200);
    expect(ok.reached).toBe(true);
    const no = await call(v6, '/wl4', '-6');
    expect(no.status).toBe(403);
    expect(no.body).toEqual({ message: 'Your IP address is not allowed' });
    expect(no.reached).toBe(false);
  });

  it('an IPv6 CIDR admits ::1 and rejects an IPv4 client', async () => {
    const ok = await call(v6, '/wl6', '-6');
    expect(ok.status).toBe(200);
    expect(ok.reached).toBe(true);
    const no = await call(v4, '/wl6', '-4');
    expect(no.status).toBe(403);
    expect(no.reached).toBe(false);
  });

  it('blacklist answers the custom message with response_code 404 for both families', async () => {
    for (const [base, fam] of [[v4, '-4'], [v6, '-6']] as const) {
      const r = await call(base, '/bl', fam);
      expect(r.status).toBe(404);
      expect(r.body).toEqual({ message: 'go away' });
      expect(r.reached).toBe(false);
    }
  });

  it('on a dual-stack listener an IPv4 client (::ffff:127.0.0.1) matches 127.0.0.0/8 and ::1 does not', async () => {
    const ok = await call(`http://127.0.0.1:${dual}`, '/wl8', '-4');
    expect(ok.status).toBe(200);
    expect(ok.reached).toBe(true);
    // The socket reports ::ffff:127.0.0.1; the HTTP adapter hands the pipeline the IPv4 form, as nginx's $remote_addr.
    expect(up.seen.at(-1)!.headers['x-forwarded-for']).toBe('127.0.0.1');
    const blocked = await call(`http://127.0.0.1:${dual}`, '/bl', '-4');
    expect(blocked.status).toBe(404);
    expect(blocked.reached).toBe(false);
    const v6client = await call(`http://[::1]:${dual}`, '/wl8', '-6');
    expect(v6client.status).toBe(403);
    expect(v6client.reached).toBe(false);
  });
});
