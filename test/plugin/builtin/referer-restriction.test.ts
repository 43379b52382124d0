import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refererHost, refererRestrictionPlugin as def } from '../../../src/plugin/builtin/referer-restriction.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { curl } from '../../helpers/curl.ts';
import { confError } from '../helpers.ts';

describe('referer-restriction', () => {
  let gw: TestGateway;
  let up: EchoServer;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startEcho('content');
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/1', { uri: '/white', plugins: { 'referer-restriction': { whitelist: ['*.xx.com', 'yy.com'] } }, upstream });
    await gw.put('/routes/2', {
      uri: '/bypass',
      plugins: { 'referer-restriction': { whitelist: ['*.xx.com', 'yy.com'], bypass_missing: true } },
      upstream,
    });
    await gw.put('/routes/3', {
      uri: '/black',
      plugins: { 'referer-restriction': { blacklist: ['*.xx.com'], message: 'Your referer host is deny' } },
      upstream,
    });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  it('validates confs like APISIX', () => {
    expect(confError(def, { whitelist: ['a.com'] })).toBeNull();
    expect(confError(def, {})).not.toBeNull();
    expect(confError(def, { whitelist: ['a.com'], blacklist: ['b.com'] })).not.toBeNull();
    expect(confError(def, { whitelist: [] })).not.toBeNull();
    expect(confError(def, { whitelist: ['a.*.com'] })).not.toBeNull();
    expect(confError(def, { blacklist: ['a.com'], message: '' })).not.toBeNull();
  });

  it('reads the host as lua-resty-http parse_uri does', () => {
    expect(refererHost('http://www.xx.com/a?b')).toBe('www.xx.com');
    expect(refererHost('https://yy.com:8443/am')).toBe('yy.com');
    expect(refererHost('//cdn.xx.com/x')).toBe('cdn.xx.com');
    expect(refererHost('http://[::1]:80/x')).toBe('[::1]');
    expect(refererHost('www.yy.com')).toBeUndefined();
    expect(refererHost('ftp://yy.com/')).toBeUndefined();
    expect(refererHost('http:///x')).toBeUndefined();
  });

  it('whitelist: listed hosts and wildcard suffixes pass, others get 403 with the default message', async () => {
    const before = up.seen.length;
    let r = await curl(`${gw.url}/white`, ['-H', 'Referer: http://www.xx.com']);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).url).toBe('/white');
    r = await curl(`${gw.url}/white`, ['-H', 'Referer: https://yy.com/am']);
    expect(r.status).toBe(200);
    r = await curl(`${gw.url}/white`, ['-H', 'Referer: https://www.yy.com/am']);
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toEqual({ message: 'Your referer host is not allowed' });
    // `*.xx.com` is a suffix match on `.xx.com`: the bare domain is not included.
    expect((await fetch(`${gw.url}/white`, { headers: { referer: 'http://xx.com/' } })).status).toBe(403);
    expect((await fetch(`${gw.url}/white`)).status).toBe(403);
    expect(up.seen.length).toBe(before + 2);
  });

  it('bypass_missing lets requests without a (parsable) Referer through', async () => {
    expect((await curl(`${gw.url}/bypass`)).status).toBe(200);
    expect((await curl(`${gw.url}/bypass`, ['-H', 'Referer: www.yy.com'])).status).toBe(200);
    expect((await curl(`${gw.url}/bypass`, ['-H', 'Referer: http://evil.com'])).status).toBe(403);
  });

  it('blacklist: listed hosts get 403 with the configured message', async () => {
    const r = await curl(`${gw.url}/black`, ['-H', 'Referer: http://www.xx.com']);
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toEqual({ message: 'Your referer host is deny' });
    expect((await curl(`${gw.url}/black`, ['-H', 'Referer: https://yy.com'])).status).toBe(200);
    expect((await curl(`${gw.url}/black`)).status).toBe(403);
  });
});
