// HTTP/3 end to end: ngtcp2's gtlsclient (Debian ngtcp2-client; nghttp3 QPACK encoder with Huffman) through
// the gateway's QUIC listener to a node:http upstream. Bodies are checked by SHA-256 on both sides.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTP3_CONNECTION, type Http3ConnectionMessage } from '../../protocols/http3/listener.ts';
import { gtls, makeCert, startH3Gateway, type GtlsResult, type H3Gateway, type TestCert } from './h3-helpers.ts';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const BIG = randomBytes(1024 * 1024);

let cert: TestCert;
let gw: H3Gateway;
let upstream: http.Server;
const seen: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; length: number; sha: string }> = [];

beforeAll(async () => {
  cert = await makeCert();
  upstream = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, length: body.length, sha: sha(body) });
      if (req.url!.startsWith('/big')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-sha256': sha(BIG) });
        res.end(BIG);
      } else if (req.url!.startsWith('/trailers')) {
        res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
        res.write('with trailers');
        res.addTrailers({ 'x-checksum': 'abc123' });
        res.end();
      } else {
        res.writeHead(201, { 'content-type': 'application/json', 'x-upstream-method': req.method! });
        res.end(JSON.stringify({ method: req.method, url: req.url, length: body.length, sha: sha(body), ua: req.headers['user-agent'] }));
      }
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const up = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  gw = await startH3Gateway(cert);
  await gw.t.put('/routes/1', { uri: '/*', upstream: { type: 'roundrobin', nodes: { [up]: 1 } } });
  await gw.t.put('/consumers', { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } });
  await gw.t.put('/routes/2', {
    uri: '/secure/*',
    plugins: { 'key-auth': {}, 'proxy-rewrite': { regex_uri: ['^/secure/(.*)', '/rewritten/$1'], headers: { set: { 'x-rewritten': 'yes' } } } },
    upstream: { type: 'roundrobin', nodes: { [up]: 1 } },
  });
}, 20_000);

afterAll(async () => {
  await gw?.t.close();
  await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
  await cert?.cleanup();
});

const url = (p: string): string => `https://localhost:${gw.port}${p}`;

describe('HTTP/3 through the gateway (gtlsclient)', () => {
  it('GET: status, upstream headers and body', async () => {
    const r = await gtls(gw.port, [url('/hello?x=1')]);
    expect(r.code).toBe(0);
    expect(r.responses).toHaveLength(1);
    expect(r.responses[0]![':status']).toBe('201');
    expect(r.responses[0]!['x-upstream-method']).toBe('GET');
    const body = JSON.parse(r.body('hello')!.toString());
    expect(body).toMatchObject({ method: 'GET', url: '/hello?x=1', length: 0, ua: 'nghttp3/ngtcp2 client' });
  }, 20_000);

  it('POST of 1 MiB reaches the upstream intact; a 1 MiB response comes back intact', async () => {
    const r = await gtls(gw.port, [url('/upload')], { method: 'POST', data: BIG });
    expect(r.code).toBe(0);
    const body = JSON.parse(r.files.get('upload')!.toString());
    expect(body).toMatchObject({ method: 'POST', length: BIG.length, sha: sha(BIG) });
    expect(seen.at(-1)!.headers['content-length']).toBe(String(BIG.length));

    const d = await gtls(gw.port, [url('/big')]);
    expect(d.code).toBe(0);
    expect(d.responses[0]!['x-sha256']).toBe(sha(BIG));
    expect(sha(d.files.get('big')!)).toBe(sha(BIG));
  }, 25_000);

  it('several requests on one QUIC connection', async () => {
    const before = seen.length;
    const connections: Http3ConnectionMessage[] = [];
    const onConnection = (m: unknown): void => void connections.push(m as Http3ConnectionMessage);
    subscribe(HTTP3_CONNECTION, onConnection);
    let r: GtlsResult;
    try {
      r = await gtls(gw.port, [url('/one'), url('/two'), url('/three'), url('/big')]);
    } finally {
      unsubscribe(HTTP3_CONNECTION, onConnection);
    }
    expect(r.code).toBe(0);
    // The gateway accepted one QUIC connection for the four requests.
    expect(connections.filter((c) => c.serverPort === gw.port)).toHaveLength(1);
    expect(r.responses.map((h) => h[':status']).sort()).toEqual(['200', '201', '201', '201']);
    expect(seen.slice(before).map((s) => s.url).sort()).toEqual(['/big', '/one', '/three', '/two']);
    expect(JSON.parse(r.files.get('two')!.toString()).url).toBe('/two');
    expect(sha(r.files.get('big')!)).toBe(sha(BIG));
  }, 20_000);

  it('response trailers reach the HTTP/3 client', async () => {
    const r = await gtls(gw.port, [url('/trailers')]);
    expect(r.code).toBe(0);
    expect(r.files.get('trailers')!.toString()).toBe('with trailers');
    expect(r.stdout + r.stderr).toMatch(/\[x-checksum: abc123\]/);
  }, 20_000);
});

describe('key-auth + proxy-rewrite behave the same over HTTP/1.1, h2 and HTTP/3', () => {
  async function h1(path: string): Promise<{ status: number; body: string }> {
    const res = await fetch(`${gw.t.url}${path}`);
    return { status: res.status, body: await res.text() };
  }
  async function h2(path: string): Promise<{ status: number; body: string }> {
    const client = http2.connect(`https://localhost:${gw.port}`, { rejectUnauthorized: false, servername: 'localhost', host: '127.0.0.1' } as http2.SecureClientSessionOptions);
    try {
      return await new Promise((resolve, reject) => {
        const req = client.request({ ':path': path });
        let status = 0;
        let body = '';
        req.on('response', (h) => (status = Number(h[':status'])));
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => resolve({ status, body }));
        req.on('error', reject);
      });
    } finally {
      client.close();
    }
  }
  async function h3(path: string): Promise<{ status: number; body: string }> {
    const r = await gtls(gw.port, [url(path)]);
    const name = path.split('?')[0]!.split('/').at(-1)!;
    return { status: Number(r.responses[0]?.[':status']), body: r.body(name)?.toString() ?? '' };
  }

  it.each([['HTTP/1.1', h1], ['h2', h2], ['HTTP/3', h3]] as const)('%s', async (_name, send) => {
    const missing = await send('/secure/thing');
    expect(missing.status).toBe(401);
    expect(JSON.parse(missing.body)).toEqual({ message: 'Missing API key in request' });
    const bad = await send('/secure/thing?apikey=nope');
    expect(bad.status).toBe(401);
    expect(JSON.parse(bad.body)).toEqual({ message: 'Invalid API key in request' });
    const ok = await send('/secure/thing?apikey=jack-key');
    expect(ok.status).toBe(201);
    expect(JSON.parse(ok.body).url).toMatch(/^\/rewritten\/thing/);
    expect(seen.at(-1)!.headers['x-rewritten']).toBe('yes');
  }, 20_000);
});

it('HTTPS answers advertise HTTP/3 on the same port (alt-svc)', async () => {
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    https.get({ host: '127.0.0.1', port: gw.port, path: '/hello', servername: 'localhost', rejectUnauthorized: false }, resolve).on('error', reject);
  });
  res.resume();
  expect(res.headers['alt-svc']).toBe(`h3=":${gw.port}"`);
});
