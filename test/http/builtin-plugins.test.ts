// Builtin HTTP plugins end to end through the real gateway, observed at the upstream and the client.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { client, curl } from './client.ts';

let gw: TestGateway;
let up: EchoServer;
const cl = client();
let upstream: Record<string, unknown>;

beforeAll(async () => {
  up = await startEcho('builtin');
  gw = await startTestGateway();
  upstream = { nodes: { [up.addr]: 1 } };
});

afterAll(async () => {
  await cl.close();
  await gw?.close();
  await up?.close();
});

describe('builtin plugins end to end', () => {
  test('proxy-rewrite: uri, regex_uri, host, headers, method', async () => {
    await gw.put('/routes/pr-uri', {
      uri: '/pr/uri',
      upstream,
      plugins: { 'proxy-rewrite': { uri: '/rewritten/$arg_id', method: 'POST', host: 'internal.svc', headers: { set: { 'x-api-version': 'v2' }, remove: ['x-drop'] } } },
    });
    const a = (await cl.call(`${gw.url}/pr/uri?id=7`, { headers: { 'x-drop': 'gone', 'x-keep': 'kept' } })).json();
    expect(a.url).toBe('/rewritten/7?id=7');
    expect(a.method).toBe('POST');
    expect(a.headers.host).toBe('internal.svc');
    expect(a.headers['x-api-version']).toBe('v2');
    expect(a.headers['x-drop']).toBeUndefined();
    expect(a.headers['x-keep']).toBe('kept');

    await gw.put('/routes/pr-regex', {
      uri: '/api/*',
      upstream,
      plugins: { 'proxy-rewrite': { regex_uri: ['^/api/(v\\d+)/(.*)', '/$2?version=$1'], headers: { add: { 'x-captured': '$1' } } } },
    });
    const b = (await cl.call(`${gw.url}/api/v3/users/9?x=1`)).json();
    expect(b.url).toBe('/users/9?version=v3&x=1');
    expect(b.headers['x-captured']).toBe('v3');
    // No regex match: the path is left alone.
    expect((await cl.call(`${gw.url}/api/plain`)).json().url).toBe('/api/plain');
  });

  test('response-rewrite: status, body, headers', async () => {
    await gw.put('/routes/rr', {
      uri: '/rr/*',
      upstream,
      plugins: {
        'response-rewrite': {
          status_code: 202,
          body: '{"replaced":true}',
          headers: { set: { 'x-server': 'gateway', 'x-route': '$route_id' }, add: ['x-multi: one'], remove: ['x-upstream'] },
        },
      },
    });
    const r = await cl.call(`${gw.url}/rr/x`);
    expect(r.status).toBe(202);
    expect(r.text).toBe('{"replaced":true}');
    expect(r.headers['content-length']).toBe(String(r.text.length));
    expect(r.headers['x-server']).toBe('gateway');
    expect(r.headers['x-route']).toBe('rr');
    expect(r.headers['x-multi']).toBe('one');
    expect(r.headers['x-upstream']).toBeUndefined();
    // The upstream was still called.
    expect(up.seen.at(-1)!.url).toBe('/rr/x');
  });

  test('redirect: http_to_https, uri with ret_code, regex_uri', async () => {
    await gw.put('/routes/rd-https', { uri: '/secure/*', plugins: { redirect: { http_to_https: true } } });
    const a = await curl(['-H', 'Host: shop.example', `${gw.url}/secure/cart?x=1`]);
    expect(a.status).toBe(301);
    expect(a.headers.location).toMatch(/^https:\/\/shop\.example(:\d+)?\/secure\/cart\?x=1$/);

    await gw.put('/routes/rd-uri', { uri: '/old', plugins: { redirect: { uri: '/new/$arg_page', ret_code: 308 } } });
    const b = await cl.call(`${gw.url}/old?page=4`);
    expect(b.status).toBe(308);
    expect(b.headers.location).toBe('/new/4');

    await gw.put('/routes/rd-regex', { uri: '/legacy/*', plugins: { redirect: { regex_uri: ['^/legacy/(.*)', '/v2/$1'] } } });
    const c = await cl.call(`${gw.url}/legacy/items/3`);
    expect(c.status).toBe(302);
    expect(c.headers.location).toBe('/v2/items/3');
  });

  test('cors: preflight answered locally, simple requests decorated', async () => {
    await gw.put('/routes/cors', {
      uri: '/cors/*',
      upstream,
      plugins: { cors: { allow_origins: 'https://a.example,https://b.example', allow_methods: 'GET,POST', allow_headers: 'x-token', expose_headers: 'x-upstream', max_age: 60 } },
    });
    const before = up.seen.length;
    const pre = await curl([
      '-X', 'OPTIONS',
      '-H', 'Origin: https://b.example',
      '-H', 'Access-Control-Request-Method: POST',
      '-H', 'Access-Control-Request-Headers: x-token',
      `${gw.url}/cors/x`,
    ]);
    expect(pre.status).toBe(200);
    expect(pre.headers['access-control-allow-origin']).toBe('https://b.example');
    expect(pre.headers['access-control-allow-methods']).toBe('GET,POST');
    expect(pre.headers['access-control-allow-headers']).toBe('x-token');
    expect(pre.headers['access-control-max-age']).toBe('60');
    expect(up.seen.length).toBe(before);

    const simple = await cl.call(`${gw.url}/cors/y`, { headers: { origin: 'https://a.example' } });
    expect(simple.status).toBe(200);
    expect(simple.headers['access-control-allow-origin']).toBe('https://a.example');
    expect(simple.headers['access-control-expose-headers']).toBe('x-upstream');
    const other = await cl.call(`${gw.url}/cors/z`, { headers: { origin: 'https://evil.example' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  test('request-id: generated, forwarded upstream and returned; a client id is kept', async () => {
    await gw.put('/routes/rid', { uri: '/rid', upstream, plugins: { 'request-id': {} } });
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const r = await cl.call(`${gw.url}/rid`);
      const id = r.headers['x-request-id'] as string;
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(r.json().headers['x-request-id']).toBe(id);
      ids.add(id);
    }
    expect(ids.size).toBe(5);
    const mine = await cl.call(`${gw.url}/rid`, { headers: { 'x-request-id': 'client-chosen' } });
    expect(mine.headers['x-request-id']).toBe('client-chosen');
    expect(mine.json().headers['x-request-id']).toBe('client-chosen');
  });

  test('real-ip: a header source from a trusted peer replaces the client address', async () => {
    await gw.put('/routes/rip', {
      uri: '/rip',
      upstream,
      plugins: {
        'real-ip': { source: 'http_x_client_ip', trusted_addresses: ['127.0.0.0/24'] },
        // Only the replaced address is allowed through: proves later plugins see it.
        'ip-restriction': { whitelist: ['203.0.113.0/24'] },
      },
    });
    const r = await cl.call(`${gw.url}/rip`, { headers: { 'x-client-ip': '203.0.113.9' } });
    expect(r.status).toBe(200);
    expect(r.json().headers['x-real-ip']).toBe('203.0.113.9');
    expect(r.json().headers['x-forwarded-for']).toBe('203.0.113.9');
    expect((await cl.call(`${gw.url}/rip`)).status).toBe(403);

    // From an untrusted peer the header is ignored.
    await gw.put('/routes/rip', { uri: '/rip', upstream, plugins: { 'real-ip': { source: 'http_x_client_ip', trusted_addresses: ['10.0.0.0/8'] } } });
    expect((await cl.call(`${gw.url}/rip`, { headers: { 'x-client-ip': '203.0.113.9' } })).json().headers['x-real-ip']).toBe('127.0.0.1');
  });
});
