// What the upstream sees and what the client gets back through the real gateway: pass_host, X-Forwarded-*,
// trusted proxies, hop-by-hop headers and trailers (apisix-compat 2 upstream pass_host, 10.12).
import net from 'node:net';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { client, curl } from './client.ts';

let gw: TestGateway;
let trusting: TestGateway;
let up: EchoServer;
const cl = client();

beforeAll(async () => {
  up = await startEcho('fwd');
  [gw, trusting] = await Promise.all([startTestGateway(), startTestGateway({ config: { apisix: { trusted_addresses: ['127.0.0.1'] } } })]);
  const route = { uri: '/*', upstream: { nodes: { [up.addr]: 1 } } };
  await gw.put('/routes/any', route);
  await trusting.put('/routes/any', route);
});

afterAll(async () => {
  await cl.close();
  await gw?.close();
  await trusting?.close();
  await up?.close();
});

/** Sends one raw HTTP/1.1 request (headers a client library would refuse) and returns the echo reply. */
function raw(port: number, head: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    s.setTimeout(10_000, () => s.destroy(new Error('raw request timed out')));
    s.on('data', (d) => (buf += d.toString()));
    s.on('error', reject);
    s.on('end', () => {
      const end = buf.indexOf('\r\n\r\n');
      const status = Number(buf.slice(9, 12));
      const rest = buf.slice(end + 4);
      try {
        // The body may be chunked: the JSON object sits between the chunk framing.
        resolve({ status, body: JSON.parse(rest.slice(rest.indexOf('{'), rest.lastIndexOf('}') + 1)) });
      } catch {
        resolve({ status, body: rest });
      }
    });
    s.write(head.replaceAll('\n', '\r\n') + '\r\n');
  });
}

describe('forwarding', () => {
  test('pass_host pass / node / rewrite as seen by the upstream', async () => {
    const port = new URL(gw.url).port;
    await gw.put('/routes/pass', { uri: '/ph/pass', upstream: { nodes: { [up.addr]: 1 }, pass_host: 'pass' } });
    await gw.put('/routes/node', { uri: '/ph/node', upstream: { nodes: { [up.addr]: 1 }, pass_host: 'node' } });
    await gw.put('/routes/rewrite', { uri: '/ph/rewrite', upstream: { nodes: { [up.addr]: 1 }, pass_host: 'rewrite', upstream_host: 'backend.internal' } });
    const h = { host: 'client.example:8443' };
    expect((await cl.call(`${gw.url}/ph/pass`, { headers: h })).json().headers.host).toBe('client.example:8443');
    expect((await cl.call(`${gw.url}/ph/node`, { headers: h })).json().headers.host).toBe(up.addr);
    expect((await cl.call(`${gw.url}/ph/rewrite`, { headers: h })).json().headers.host).toBe('backend.internal');
    const c = await curl([`${gw.url}/ph/pass`]);
    expect(JSON.parse(c.body).headers.host).toBe(`127.0.0.1:${port}`);
  });

  test('keepalive_pool: upstream connections are reused, one request per connection with requests: 1', async () => {
    await gw.put('/routes/ka', { uri: '/ka/on', upstream: { nodes: { [up.addr]: 1 } } });
    await gw.put('/routes/ka-off', { uri: '/ka/off', upstream: { nodes: { [up.addr]: 1 }, keepalive_pool: { size: 1, idle_timeout: 60, requests: 1 } } });
    const ports = async (path: string) => {
      const seen = new Set<number>();
      for (let i = 0; i < 10; i++) seen.add((await cl.call(`${gw.url}${path}`)).json().remotePort);
      return seen.size;
    };
    expect(await ports('/ka/on')).toBe(1);
    expect(await ports('/ka/off')).toBe(10);
  });

  test('X-Forwarded-* and X-Real-IP are set; client X-Forwarded-* dropped unless the peer is trusted', async () => {
    const spoof = { 'x-forwarded-for': '1.2.3.4', 'x-forwarded-proto': 'https', 'x-real-ip': '9.9.9.9', host: 'Shop.Example:81' };
    const a = (await cl.call(`${gw.url}/xf`, { headers: spoof })).json().headers;
    expect(a['x-forwarded-for']).toBe('127.0.0.1');
    expect(a['x-forwarded-proto']).toBe('http');
    expect(a['x-forwarded-host']).toBe('shop.example');
    expect(a['x-forwarded-port']).toBe(new URL(gw.url).port);
    expect(a['x-real-ip']).toBe('127.0.0.1');

    const b = (await cl.call(`${trusting.url}/xf`, { headers: spoof })).json().headers;
    expect(b['x-forwarded-for']).toBe('1.2.3.4, 127.0.0.1');
    expect(b['x-forwarded-proto']).toBe('https');
    expect(b['x-real-ip']).toBe('127.0.0.1');
  });

  test('hop-by-hop request headers are stripped; non-websocket Upgrade is a plain request', async () => {
    const r = await raw(
      gw.port,
      [
        'GET /hop HTTP/1.1',
        'Host: hop.test',
        'Connection: close, X-Secret-Hop',
        'X-Secret-Hop: 1',
        'Keep-Alive: timeout=5',
        'TE: trailers',
        'Upgrade: foo/1',
        'Proxy-Authorization: Basic eDp5',
        'X-End-To-End: kept',
        '',
      ].join('\n'),
    );
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const h = r.body.headers;
    for (const name of ['x-secret-hop', 'keep-alive', 'te', 'upgrade', 'proxy-authorization']) expect(h[name], name).toBeUndefined();
    expect(h['x-end-to-end']).toBe('kept');

    // curl --http2 over cleartext asks for `Upgrade: h2c`; like nginx, the gateway answers over HTTP/1.1.
    const c = await curl(['--http2', `${gw.url}/h2c-upgrade`]);
    expect(c.status).toBe(200);
    const seen = JSON.parse(c.body).headers;
    expect(seen.upgrade).toBeUndefined();
    expect(seen['http2-settings']).toBeUndefined();
  });

  test('hop-by-hop response headers are stripped', async () => {
    const hop = http.createServer((_req, res) => {
      res.writeHead(200, { connection: 'keep-alive, x-internal', 'x-internal': 'secret', 'keep-alive': 'timeout=5', 'x-public': 'yes' });
      res.end('ok');
    });
    await new Promise<void>((r) => hop.listen(0, '127.0.0.1', r));
    try {
      await gw.put('/routes/hop-resp', { uri: '/hop-resp', upstream: { nodes: { [`127.0.0.1:${(hop.address() as net.AddressInfo).port}`]: 1 } } });
      const c = await curl([`${gw.url}/hop-resp`]);
      expect(c.status).toBe(200);
      expect(c.headers['x-internal']).toBeUndefined();
      expect(c.headers['x-public']).toBe('yes');
      expect(c.body).toBe('ok');
    } finally {
      hop.closeAllConnections();
      hop.close();
    }
  });

  // Request trailers are not forwarded: undici cannot send them (nginx, hence APISIX, drops them as well).
  test('response trailers pass through; a chunked request with trailers arrives intact', async () => {
    const res = await new Promise<{ body: any; trailers: NodeJS.Dict<string> }>((resolve, reject) => {
      const req = http.request(`${gw.url}/trailers`, { method: 'POST', headers: { 'transfer-encoding': 'chunked', trailer: 'x-client-sum' } }, (r) => {
        let text = '';
        r.on('data', (d) => (text += d));
        r.on('end', () => resolve({ body: JSON.parse(text), trailers: r.trailers }));
        r.on('error', reject);
      });
      req.on('error', reject);
      req.write('hello ');
      req.write('world');
      req.addTrailers({ 'x-client-sum': '42' });
      req.end();
    });
    expect(res.body.bodyLength).toBe(11);
    expect(res.trailers['x-upstream-trailer']).toBe('done');
    expect(res.trailers['x-body-length']).toBe('11');
  });
});
