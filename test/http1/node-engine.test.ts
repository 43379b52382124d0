// The core HTTP/1.1 e2e checks on both downstream engines: the rest of the suite runs on the default engine;
// this compact matrix keeps the other one (`switchyard.http1_engine: node | socket`) covered and shows any
// divergence between the two as one failing row. Each engine gets its own gateway with the same routes; every
// answer is checked on its own, not only against the other engine.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { raw, RawConn } from './raw.ts';

// Each gateway must run the engine its config names: the suite-wide override would make both the same.
delete process.env.SWITCHYARD_HTTP1_ENGINE;

const ENGINES = ['node', 'socket'] as const;
type Engine = (typeof ENGINES)[number];

let up: EchoServer;
let hasher: http.Server;
let wss: WebSocketServer;
const gws = new Map<Engine, TestGateway>();

beforeAll(async () => {
  up = await startEcho('up');
  // Answers the sha256 and length of the request body: the body reached the upstream byte for byte.
  hasher = http.createServer((req, res) => {
    const h = createHash('sha256');
    let n = 0;
    req.on('data', (c: Buffer) => {
      h.update(c);
      n += c.length;
    });
    req.on('end', () => res.end(JSON.stringify({ sha: h.digest('hex'), n })));
  });
  await new Promise<void>((r) => hasher.listen(0, '127.0.0.1', r));
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  wss.on('connection', (ws) => ws.on('message', (d, isBinary) => ws.send(isBinary ? d : `echo:${String(d)}`, { binary: isBinary })));
  const hashAddr = `127.0.0.1:${(hasher.address() as AddressInfo).port}`;
  const wsAddr = `127.0.0.1:${(wss.address() as AddressInfo).port}`;
  const started = await Promise.all(
    ENGINES.map((e) => startTestGateway({ config: { switchyard: { http1_engine: e, limits: { max_header_size: 4096 } } } })),
  );
  for (let i = 0; i < ENGINES.length; i++) {
    const g = started[i]!;
    gws.set(ENGINES[i]!, g);
    await g.put('/routes/echo', { uris: ['/e/*', '/trailers', '/bytes/*'], upstream: { nodes: { [up.addr]: 1 } } });
    await g.put('/routes/hash', { uri: '/hash', upstream: { nodes: { [hashAddr]: 1 } } });
    await g.put('/routes/ws', { uri: '/ws/*', enable_websocket: true, upstream: { nodes: { [wsAddr]: 1 } } });
  }
});

afterAll(async () => {
  await Promise.all([...gws.values()].map((g) => g.close()));
  for (const c of wss?.clients ?? []) c.terminate();
  await new Promise((r) => wss?.close(r));
  await new Promise((r) => hasher?.close(r));
  await up?.close();
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const codes = (statuses: string[]) => statuses.map((s) => s.slice(9, 12));

describe.each(ENGINES)('http1_engine: %s', (engine) => {
  const gw = () => gws.get(engine)!;

  test('GET: proxied with its query and forwarding headers; the configured engine answered', async () => {
    const r = await raw(gw().port, ['GET /e/get?x=1&y=2 HTTP/1.1\r\nHost: svc.test\r\nConnection: close\r\n\r\n']);
    expect(r.statuses).toEqual(['HTTP/1.1 200 OK']);
    const body = JSON.parse(r.text.slice(r.text.indexOf('{'), r.text.lastIndexOf('}') + 1)) as { url: string; headers: Record<string, string> };
    expect(body.url).toBe('/e/get?x=1&y=2');
    expect(body.headers.host).toBe('svc.test');
    expect(body.headers['x-forwarded-for']).toBe('127.0.0.1');
    // node:http writes its own framing fields capitalised; the socket engine writes them lowercase. This proves
    // the gateway under test runs the engine its config names.
    expect(r.text).toMatch(engine === 'node' ? /\r\nConnection: close\r\n/ : /\r\nconnection: close\r\n/);
    expect(r.closedByPeer).toBe(true);
  });

  test('POST with content-length and chunked (split at awkward places): bodies reach the upstream intact', async () => {
    const big = Buffer.alloc(256 * 1024, 'abcdefgh');
    const res = await fetch(`${gw().url}/hash`, { method: 'POST', body: big });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ sha: sha(big), n: big.length });
    const head = 'POST /hash HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n';
    const r = await raw(gw().port, [head + '5;ext=1\r\nhel', 'lo\r', '\n6\r\n wor', 'ld\r\n0\r\n', '\r\n'], { gapMs: 20 });
    expect(r.statuses).toEqual(['HTTP/1.1 200 OK']);
    expect(r.text).toContain(JSON.stringify({ sha: sha(Buffer.from('hello world')), n: 11 }));
  });

  test('keep-alive and pipelining: answered in order on one connection, which stays open', async () => {
    const c = new RawConn(gw().port);
    try {
      for (const i of [1, 2]) {
        c.write(`GET /e/ka/${i} HTTP/1.1\r\nHost: a\r\n\r\n`);
        await c.waitFor(`"url":"/e/ka/${i}"`);
      }
      c.write('GET /e/p/1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /e/p/2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /e/p/3 HTTP/1.1\r\nHost: a\r\n\r\n');
      await c.waitFor('"url":"/e/p/3"');
      expect([...c.buf.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1])).toEqual(['/e/ka/1', '/e/ka/2', '/e/p/1', '/e/p/2', '/e/p/3']);
      expect(c.buf.match(/^HTTP\/1\.1 200 OK/gm)).toHaveLength(5);
      expect(c.closed).toBe(false);
    } finally {
      c.destroy();
    }
  });

  test('response framing: chunked with trailers, HEAD without a body, HTTP/1.0 close-delimited', async () => {
    const t = await raw(gw().port, ['GET /trailers HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: close\r\n\r\n']);
    expect(t.text.toLowerCase()).toContain('transfer-encoding: chunked');
    expect(t.text).toMatch(/\r\n0\r\n(?:[^\r\n]+\r\n)*x-upstream-trailer: done\r\n/);
    const h = await raw(gw().port, ['HEAD /bytes/5000 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n']);
    expect(h.statuses).toEqual(['HTTP/1.1 200 OK']);
    expect(h.text.toLowerCase()).toContain('content-length: 5000\r\n');
    expect(h.text.endsWith('\r\n\r\n')).toBe(true);
    const old = await raw(gw().port, ['GET /bytes/3000 HTTP/1.0\r\n\r\n']);
    expect(old.statuses).toEqual(['HTTP/1.1 200 OK']);
    expect(old.text.length - old.text.indexOf('\r\n\r\n') - 4).toBe(3000);
    expect(old.closedByPeer).toBe(true);
  });

  test('Expect: 100-continue: 100 Continue, then the answer to the whole body', async () => {
    const c = new RawConn(gw().port);
    try {
      c.write('POST /hash HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
      await c.waitFor('HTTP/1.1 100 Continue\r\n\r\n');
      c.write('abcd');
      await c.waitFor(JSON.stringify({ sha: sha(Buffer.from('abcd')), n: 4 }));
      expect(c.buf.match(/^HTTP\/1\.1 \d+/gm)).toEqual(['HTTP/1.1 100', 'HTTP/1.1 200']);
    } finally {
      c.destroy();
    }
  });

  test('WebSocket: upgraded on an enable_websocket route, frames both ways', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${gw().port}/ws/chat`);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    try {
      for (const m of ['one', 'two']) {
        const reply = new Promise<string>((r) => ws.once('message', (d) => r(String(d))));
        ws.send(m);
        expect(await reply).toBe(`echo:${m}`);
      }
    } finally {
      ws.terminate();
    }
  });

  test('bad requests: 400 and close for malformed or ambiguous framing, nothing smuggled; 404 body as APISIX', async () => {
    const smuggled = 'GET /e/smuggled HTTP/1.1\r\nHost: a\r\n\r\n';
    for (const bad of [
      'GET /e/x HTTP/1.1\r\nHost: a\r\nBad Header: 1\r\n\r\n',
      'POST /e/x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'GET /e/x HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n',
    ]) {
      const r = await raw(gw().port, [bad + smuggled]);
      expect(codes(r.statuses)).toEqual(['400']);
      expect(r.closedByPeer).toBe(true);
    }
    expect(up.seen.some((s) => s.url === '/e/smuggled')).toBe(false);
    const nf = await fetch(`${gw().url}/nowhere`);
    expect(nf.status).toBe(404);
    expect(await nf.text()).toBe('{"error_msg":"404 Route Not Found"}\n');
  });

  test('431 for a head over max_header_size, and the gateway keeps serving', async () => {
    const r = await raw(gw().port, [`GET /e/x HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(6000)}\r\n\r\n`]);
    expect(r.statuses).toEqual(['HTTP/1.1 431 Request Header Fields Too Large']);
    expect(r.closedByPeer).toBe(true);
    const ok = await fetch(`${gw().url}/e/after`);
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
  });
});
