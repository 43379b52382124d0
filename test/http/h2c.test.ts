// Cleartext HTTP/2 through the real gateway (apisix-compat 7 HTTP/2): an h2c prior-knowledge client in front
// of an HTTP/1.1 upstream, and an HTTP/1.1 client in front of an h2c upstream.
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { client, curl } from './client.ts';

let gw: TestGateway;
let h1: EchoServer;
let h2: http2.Http2Server;
const cl = client();

beforeAll(async () => {
  h1 = await startEcho('h1');
  h2 = http2.createServer((req, res) => {
    let len = 0;
    req.on('data', (c: Buffer) => (len += c.length));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.setHeader('x-upstream', 'h2c');
      res.end(JSON.stringify({ httpVersion: req.httpVersion, method: req.method, path: req.url, authority: req.headers[':authority'], bodyLength: len }));
    });
  });
  await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
  gw = await startTestGateway();
  await gw.put('/routes/to-h1', { uri: '/h1/*', upstream: { nodes: { [h1.addr]: 1 } } });
  await gw.put('/routes/to-h2', {
    uri: '/h2/*',
    upstream: { scheme: 'http', http2: true, nodes: { [`127.0.0.1:${(h2.address() as AddressInfo).port}`]: 1 } },
  });
});

afterAll(async () => {
  await cl.close();
  await gw?.close();
  await h1?.close();
  await new Promise((r) => h2?.close(r));
});

function h2request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<{ headers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    let text = '';
    let head: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => (head = h));
    req.on('data', (d: Buffer) => (text += d.toString()));
    req.on('end', () => resolve({ headers: head, body: text }));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
  });
}

describe('h2c', () => {
  test('prior-knowledge h2c client to an HTTP/1.1 upstream, many streams on one session', async () => {
    const session = http2.connect(gw.url);
    try {
      const replies = await Promise.all(
        Array.from({ length: 10 }, (_, i) => h2request(session, { ':method': 'GET', ':path': `/h1/s${i}?q=${i}`, 'x-stream': String(i) })),
      );
      replies.forEach((r, i) => {
        expect(r.headers[':status']).toBe(200);
        const echo = JSON.parse(r.body);
        expect(echo.server).toBe('h1');
        expect(echo.url).toBe(`/h1/s${i}?q=${i}`);
        expect(echo.headers['x-stream']).toBe(String(i));
        // :authority becomes the upstream Host (pass_host pass).
        expect(echo.headers.host).toBe(`127.0.0.1:${gw.port}`);
      });
      const post = await h2request(session, { ':method': 'POST', ':path': '/h1/upload', 'content-type': 'application/octet-stream' }, Buffer.alloc(300_000, 1));
      expect(post.headers[':status']).toBe(200);
      expect(JSON.parse(post.body).bodyLength).toBe(300_000);
      const miss = await h2request(session, { ':method': 'GET', ':path': '/nowhere' });
      expect(miss.headers[':status']).toBe(404);
      expect(miss.body).toBe('{"error_msg":"404 Route Not Found"}\n');
    } finally {
      session.close();
    }
  });

  test('curl --http2-prior-knowledge works too', async () => {
    const c = await curl(['--http2-prior-knowledge', `${gw.url}/h1/curl`]);
    expect(c.status).toBe(200);
    expect(JSON.parse(c.body).url).toBe('/h1/curl');
  });

  test('HTTP/1.1 client to an h2c upstream (upstream http2: true, scheme http)', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await cl.call(`${gw.url}/h2/x${i}`, { headers: { host: 'front.test' } });
      expect(r.status).toBe(200);
      expect(r.headers['x-upstream']).toBe('h2c');
      expect(r.json()).toMatchObject({ httpVersion: '2.0', method: 'GET', path: `/h2/x${i}`, authority: 'front.test' });
    }
    const post = await cl.call(`${gw.url}/h2/post`, { method: 'POST', body: Buffer.alloc(200_000, 2) });
    expect(post.json()).toMatchObject({ httpVersion: '2.0', method: 'POST', bodyLength: 200_000 });
  });
});
