// Conformance of the socket HTTP/1.1 engine over raw sockets: pipelining (in order, one at a time), chunked
// request bodies in odd pieces, Expect: 100-continue, response framing (chunked + trailers, HEAD, 204/304,
// HTTP/1.0), half-close, slow clients (header, body and keep-alive timeouts), big bodies both ways, the h2c
// sniff, and what an idle keep-alive connection keeps.
import { createHash } from 'node:crypto';
import diagnostics_channel from 'node:diagnostics_channel';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { raw, RawConn } from './raw.ts';

// These are the socket engine's own conformance tests: the suite-wide engine override must not swap it out.
delete process.env.SWITCHYARD_HTTP1_ENGINE;

let up: EchoServer;
let gw: TestGateway;
let hasher: http.Server;
let hashAddr: string;

beforeAll(async () => {
  up = await startEcho('up');
  // Answers the sha256 and length of the request body (the upstream side of the body tests), and 204/304/HEAD.
  hasher = http.createServer((req, res) => {
    if (req.url === '/204') return void res.writeHead(204).end();
    if (req.url === '/304') return void res.writeHead(304, { etag: '"x"' }).end();
    const h = createHash('sha256');
    let n = 0;
    req.on('data', (c: Buffer) => {
      h.update(c);
      n += c.length;
    });
    req.on('end', () => {
      const body = JSON.stringify({ sha: h.digest('hex'), n });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
  });
  await new Promise<void>((r) => hasher.listen(0, '127.0.0.1', r));
  hashAddr = `127.0.0.1:${(hasher.address() as AddressInfo).port}`;
  gw = await startTestGateway({
    config: { switchyard: { http1_engine: 'socket', limits: { client_header_timeout: 1, client_body_timeout: 1, keepalive_timeout: 1 } } },
  });
  await gw.put('/routes/echo', { uri: '/*', upstream: { nodes: { [up.addr]: 1 } } });
  await gw.put('/routes/hash', { uri: '/hash/*', upstream: { nodes: { [hashAddr]: 1 } }, plugins: { 'proxy-rewrite': { regex_uri: ['^/hash/(.*)', '/$1'] } } });
});

afterAll(async () => {
  await gw?.close();
  await up?.close();
  await new Promise((r) => hasher?.close(r));
});

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('pipelining', () => {
  test('ten requests in one write, GETs and bodies mixed, answered in order', async () => {
    let req = '';
    for (let i = 0; i < 10; i++) {
      req += i % 3 === 1
        ? `POST /p/${i} HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello`
        : i % 3 === 2
          ? `PUT /p/${i} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n`
          : `GET /p/${i} HTTP/1.1\r\nHost: a\r\n${i === 9 ? 'Connection: close\r\n' : ''}\r\n`;
    }
    const r = await raw(gw.port, [req]);
    expect(r.statuses).toHaveLength(10);
    const urls = [...r.text.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1]);
    expect(urls).toEqual(Array.from({ length: 10 }, (_, i) => `/p/${i}`));
    const lengths = [...r.text.matchAll(/"bodyLength":(\d+)/g)].map((m) => Number(m[1]));
    expect(lengths).toEqual(Array.from({ length: 10 }, (_, i) => (i % 3 === 1 ? 5 : i % 3 === 2 ? 2 : 0)));
    expect(r.closedByPeer).toBe(true);
  });

  test('a malformed request after good ones: the good ones are answered first, then 400 and close', async () => {
    const good = 'GET /ok HTTP/1.1\r\nHost: a\r\n\r\n';
    const r = await raw(gw.port, [good + good + 'GET /x HTTP/1.1\r\nHost: a\r\nBad Header: 1\r\n\r\n']);
    expect(r.statuses.map((s) => s.slice(9, 12))).toEqual(['200', '200', '400']);
    expect(r.closedByPeer).toBe(true);
  });
});

describe('request bodies', () => {
  test('chunked body with extensions, split at every awkward place, arrives intact', async () => {
    const body = 'The quick brown fox jumps over the lazy dog';
    const wire = `POST /hash/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n` +
      `5;ext=1\r\n${body.slice(0, 5)}\r\n1\r\n${body.slice(5, 6)}\r\n${(body.length - 6).toString(16)}\r\n${body.slice(6)}\r\n0\r\nX-Trailer: t\r\n\r\n`;
    const parts: string[] = [];
    for (let i = 0; i < wire.length; i += 7) parts.push(wire.slice(i, i + 7));
    const r = await raw(gw.port, parts, { gapMs: 2 });
    expect(r.statuses).toEqual(['HTTP/1.1 200 OK']);
    expect(JSON.parse(r.text.slice(r.text.indexOf('\r\n\r\n') + 4))).toEqual({ sha: sha(body), n: body.length });
  });

  test('8 MB content-length upload and 8 MB download stream through with their bytes intact', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big.writeUInt32BE(i, i);
    const res = await fetch(`${gw.url}/hash/up`, { method: 'POST', body: big });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ sha: sha(big), n: big.length });
    const down = await fetch(`${gw.url}/bytes/${8 * 1024 * 1024}`);
    expect(down.status).toBe(200);
    expect((await down.arrayBuffer()).byteLength).toBe(8 * 1024 * 1024);
  });
});

describe('Expect: 100-continue', () => {
  test('100 Continue is sent when the body is wanted, then the answer', async () => {
    const c = new RawConn(gw.port);
    c.write('POST /hash/c HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
    await c.waitFor('HTTP/1.1 100 Continue\r\n\r\n');
    c.write('hello');
    await c.waitFor('"n":5');
    expect(c.buf.startsWith('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK')).toBe(true);
    c.destroy();
  });

  test('an answer before the body (no route): no 100 Continue, and the connection closes', async () => {
    await gw.put('/routes/deny', { uri: '/denied', plugins: { 'key-auth': {} }, upstream: { nodes: { [up.addr]: 1 } } });
    const r = await raw(gw.port, ['POST /denied HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n']);
    expect(r.statuses).toEqual(['HTTP/1.1 401 Unauthorized']);
    expect(r.text).not.toContain('100 Continue');
    expect(r.text.toLowerCase()).toContain('connection: close');
    expect(r.closedByPeer).toBe(true);
  });

  test('another expectation: 417', async () => {
    const r = await raw(gw.port, ['GET /e HTTP/1.1\r\nHost: a\r\nExpect: something\r\nConnection: close\r\n\r\n']);
    expect(r.statuses).toEqual(['HTTP/1.1 417 Expectation Failed']);
  });
});

describe('response framing', () => {
  test('chunked response with trailers reaches the client with its trailers', async () => {
    const r = await raw(gw.port, ['GET /trailers HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: close\r\n\r\n']);
    expect(r.text.toLowerCase()).toContain('transfer-encoding: chunked');
    expect(r.text).toMatch(/\r\n0\r\n(.*\r\n)*x-upstream-trailer: done\r\n/);
  });

  test('HEAD keeps content-length without a body; 204 and 304 have no body; keep-alive continues after them', async () => {
    const r = await raw(gw.port, [
      'HEAD /hash/h HTTP/1.1\r\nHost: a\r\n\r\nGET /hash/204 HTTP/1.1\r\nHost: a\r\n\r\nGET /hash/304 HTTP/1.1\r\nHost: a\r\n\r\n' +
      'GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    ]);
    expect(r.statuses.map((s) => s.slice(9, 12))).toEqual(['200', '204', '304', '200']);
    const head = r.text.slice(0, r.text.indexOf('\r\n\r\n') + 4);
    expect(head.toLowerCase()).toMatch(/content-length: \d+/);
    // The next status line follows the HEAD answer's head directly.
    expect(r.text.slice(head.length).startsWith('HTTP/1.1 204')).toBe(true);
  });

  test('HTTP/1.0 without keep-alive: close-delimited body, then the connection closes', async () => {
    const r = await raw(gw.port, ['GET /old HTTP/1.0\r\n\r\n']);
    expect(r.statuses[0]).toBe('HTTP/1.1 200 OK');
    expect(r.text.toLowerCase()).not.toContain('transfer-encoding');
    expect(r.text).toContain('"url":"/old"');
    expect(r.closedByPeer).toBe(true);
  });

  test('a client that half-closes while its request runs has left (nginx 499): the upstream request is cancelled', async () => {
    const r = await raw(gw.port, ['GET /delay/1500 HTTP/1.1\r\nHost: a\r\n\r\n'], { end: true, idleMs: 3000 });
    expect(r.statuses).toEqual([]);
    expect(r.closedByPeer).toBe(true);
    // Closed at once, not after the upstream's 1.5 s answer.
    expect(r.closeAfterMs).toBeLessThan(1500);
  });
});

describe('slow clients (1 s timeouts)', () => {
  test('slowloris head: 408 after client_header_timeout even while bytes trickle in', async () => {
    const c = new RawConn(gw.port);
    const started = Date.now();
    const head = 'GET /slow HTTP/1.1\r\nHost: a\r\nX-A: ';
    const drip = setInterval(() => !c.closed && c.write('a'), 200);
    c.write(head);
    const waited = await c.waitClose(5000);
    clearInterval(drip);
    console.log(`slowloris head cut after ${Date.now() - started} ms (client_header_timeout 1 s)`);
    expect(c.buf.startsWith('HTTP/1.1 408')).toBe(true);
    expect(waited).toBeLessThan(5000);
  });

  test('stalled body: the connection is cut after client_body_timeout', async () => {
    const c = new RawConn(gw.port);
    c.write('POST /hash/stall HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc');
    const waited = await c.waitClose(5000);
    console.log(`stalled body cut after ${waited} ms (client_body_timeout 1 s)`);
    expect(c.closed).toBe(true);
  });

  test('a client that never sends a byte is closed unanswered after client_header_timeout', async () => {
    const c = new RawConn(gw.port);
    const waited = await c.waitClose(5000);
    console.log(`silent client closed after ${waited} ms (client_header_timeout 1 s)`);
    expect(c.buf).toBe('');
  });

  test('idle keep-alive connection closes after keepalive_timeout; a busy one stays', async () => {
    const c = new RawConn(gw.port);
    c.write('GET /ka HTTP/1.1\r\nHost: a\r\n\r\n');
    await c.waitFor('"url":"/ka"');
    const waited = await c.waitClose(5000);
    console.log(`idle keep-alive closed after ${waited} ms (keepalive_timeout 1 s)`);
    const busy = new RawConn(gw.port);
    for (let i = 0; i < 6; i++) {
      busy.write(`GET /busy/${i} HTTP/1.1\r\nHost: a\r\n\r\n`);
      await busy.waitFor(`"url":"/busy/${i}"`);
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(busy.closed).toBe(false);
    busy.destroy();
  });
});

describe('h2c prior knowledge on the same port', () => {
  test('the HTTP/2 preface hands the connection to the h2 server; HTTP/1.1 clients keep the engine', async () => {
    const session = http2.connect(`http://127.0.0.1:${gw.port}`);
    try {
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = session.request({ ':path': '/h2c/a', ':method': 'GET' });
        let status = 0;
        let body = '';
        req.on('response', (h) => (status = Number(h[':status'])));
        req.setEncoding('utf8');
        req.on('data', (d: string) => (body += d));
        req.on('end', () => resolve({ status, body }));
        req.on('error', reject);
        req.end();
      });
      expect(status).toBe(200);
      expect(body).toContain('"url":"/h2c/a"');
    } finally {
      session.close();
    }
    // Two bytes of the preface are not enough to call it HTTP/2 (as the node:http path sniffs): HTTP/1.1 parses it.
    const r = await raw(gw.port, ['PR\r\n\r\n']);
    expect(r.statuses).toEqual(['HTTP/1.1 400 Bad Request']);
  });
});

describe('an idle keep-alive connection', () => {
  test('keeps no parser, timer, per-connection closure, extra listener or cached address objects, and serves its next request', async () => {
    const accepted: Socket[] = [];
    const onSocket = (m: unknown): void => {
      const s = (m as { socket: Socket }).socket;
      if (s.localPort === gw.port) accepted.push(s);
    };
    diagnostics_channel.subscribe('net.server.socket', onSocket);
    const c = new RawConn(gw.port);
    try {
      c.write('GET /idle/1 HTTP/1.1\r\nHost: a\r\n\r\n');
      await c.waitFor('"url":"/idle/1"');
      expect(accepted).toHaveLength(1);
      const sock = accepted[0]! as Socket & { _peername?: unknown; _sockname?: unknown };
      const own = (name: string): unknown => {
        const k = Object.getOwnPropertySymbols(sock).find((sym) => sym.description === name);
        return k === undefined ? undefined : (sock as unknown as Record<symbol, unknown>)[k];
      };
      const conn = own('switchyard.h1conn') as { parser: unknown; cur: unknown };
      // The engine reaches its idle state once the answer is out.
      await expect.poll(() => conn.cur, { timeout: 5000 }).toBeNull();
      expect(conn.parser).toBeNull();
      // No socket timer (node keeps a cleared Timeout object under its timeout symbol once one was set).
      expect(own('timeout') ?? null).toBeNull();
      expect(sock.listenerCount('timeout')).toBe(0);
      expect(sock.listenerCount('data')).toBe(1);
      // Node's own 'end' listener is a no-op with half-open allowed and is dropped: one listener, no array.
      expect(sock.listenerCount('end')).toBe(1);
      expect(sock._peername ?? null).toBeNull();
      expect(sock._sockname ?? null).toBeNull();
      c.write('GET /idle/2 HTTP/1.1\r\nHost: a\r\n\r\n');
      await c.waitFor('"url":"/idle/2"');
      expect(c.buf.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(2);
    } finally {
      diagnostics_channel.unsubscribe('net.server.socket', onSocket);
      c.destroy();
    }
  });
});
