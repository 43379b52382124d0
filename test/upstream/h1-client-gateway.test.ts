// The socket-level upstream client driven by real clients through a real gateway
// (`switchyard.upstream_http1_client: socket`, on both downstream engines), beside a gateway on undici where
// the two clients answer differently (1xx from the upstream, a keep-alive connection that died while idle).
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { rawUpstream, reply, type RawUpstream } from './h1-client-peers.ts';

// These tests choose the client per gateway: the suite-wide override must not swap it.
delete process.env.SWITCHYARD_UPSTREAM_CLIENT;

let echo: EchoServer;
let hasher: http.Server;
let hashAddr = '';
let endless: http.Server;
let endlessClosed = 0;
let endlessAddr = '';
let early: RawUpstream;
let stale: RawUpstream;
let silent: RawUpstream;
const gws: Record<'socket' | 'socketNode' | 'undici', TestGateway> = {} as never;

beforeAll(async () => {
  echo = await startEcho('echo');
  hasher = http.createServer((req, res) => {
    const h = createHash('sha256');
    let n = 0;
    req.on('data', (c: Buffer) => {
      h.update(c);
      n += c.length;
    });
    req.on('end', () => res.end(JSON.stringify({ sha: h.digest('hex'), n, te: req.headers['transfer-encoding'] ?? null })));
  });
  await new Promise<void>((r) => hasher.listen(0, '127.0.0.1', r));
  hashAddr = `127.0.0.1:${(hasher.address() as AddressInfo).port}`;
  endless = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    const t = setInterval(() => res.write('tick\n'), 10);
    res.on('close', () => {
      clearInterval(t);
      endlessClosed++;
    });
  });
  await new Promise<void>((r) => endless.listen(0, '127.0.0.1', r));
  endlessAddr = `127.0.0.1:${(endless.address() as AddressInfo).port}`;
  early = await rawUpstream((s) => s.write('HTTP/1.1 100 Continue\r\n\r\n' + reply(200, 'after 100')));
  stale = await rawUpstream((s, req) => {
    if (req.seq === 1) s.write(reply(200, `conn ${req.conn}`));
    else s.resetAndDestroy();
  });
  silent = await rawUpstream(() => undefined);
  const [a, b, c] = await Promise.all([
    startTestGateway({ config: { switchyard: { http1_engine: 'socket', upstream_http1_client: 'socket' } } }),
    startTestGateway({ config: { switchyard: { http1_engine: 'node', upstream_http1_client: 'socket' } } }),
    startTestGateway({ config: { switchyard: { http1_engine: 'socket', upstream_http1_client: 'undici' } } }),
  ]);
  gws.socket = a!;
  gws.socketNode = b!;
  gws.undici = c!;
  const dead = `127.0.0.1:${await freePort()}`;
  for (const gw of [a!, b!, c!]) {
    await gw.put('/routes/echo', { uri: '/echo/*', upstream: { nodes: { [echo.addr]: 1 } } });
    await gw.put('/routes/bytes', { uri: '/bytes/*', upstream: { nodes: { [echo.addr]: 1 } } });
    await gw.put('/routes/hash', { uri: '/hash', upstream: { nodes: { [hashAddr]: 1 } } });
    await gw.put('/routes/endless', { uri: '/endless', upstream: { nodes: { [endlessAddr]: 1 } } });
    await gw.put('/routes/early', { uri: '/early', upstream: { nodes: { [`127.0.0.1:${early.port}`]: 1 } } });
    await gw.put('/routes/stale', { uri: '/stale', upstream: { nodes: { [`127.0.0.1:${stale.port}`]: 1 } } });
    await gw.put('/routes/retry', { uri: '/retry/*', upstream: { type: 'roundrobin', nodes: { [dead]: 100, [echo.addr]: 1 } } });
    await gw.put('/routes/silent', { uri: '/silent', timeout: { connect: 1, send: 1, read: 0.5 }, upstream: { nodes: { [`127.0.0.1:${silent.port}`]: 1 } } });
  }
});

afterAll(async () => {
  await Promise.all(Object.values(gws).map((g) => g?.close()));
  await echo?.close();
  await early?.close();
  await stale?.close();
  await silent?.close();
  await new Promise((r) => hasher?.close(r));
  endless?.closeAllConnections();
  await new Promise((r) => endless?.close(r));
});

describe.each(['socket', 'socketNode'] as const)('gateway %s with upstream_http1_client: socket', (name) => {
  const gw = () => gws[name];

  it('GET, POST with content-length, chunked upload, 4 MB download: bytes intact', async () => {
    const r = await fetch(`${gw().url}/echo/a?b=1`, { headers: { 'x-test': 'v' } });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { url: string; headers: Record<string, string> };
    expect(body.url).toBe('/echo/a?b=1');
    expect(body.headers['x-test']).toBe('v');
    const payload = Buffer.alloc(1_000_000, 9);
    const sha = createHash('sha256').update(payload).digest('hex');
    const post = await fetch(`${gw().url}/hash`, { method: 'POST', body: payload });
    expect(await post.json()).toEqual({ sha, n: payload.length, te: null });
    const chunked = await fetch(`${gw().url}/hash`, {
      method: 'PUT',
      body: new ReadableStream({
        start(c) {
          c.enqueue(payload.subarray(0, 500_000));
          c.enqueue(payload.subarray(500_000));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(await chunked.json()).toEqual({ sha, n: payload.length, te: 'chunked' });
    const big = await fetch(`${gw().url}/bytes/${4 * 1024 * 1024}`);
    expect(Buffer.from(await big.arrayBuffer()).length).toBe(4 * 1024 * 1024);
  });

  it('sequential requests reuse one upstream connection', async () => {
    const start = echo.seen.length;
    for (let i = 0; i < 10; i++) await (await fetch(`${gw().url}/echo/seq`)).arrayBuffer();
    expect(new Set(echo.seen.slice(start).map((s) => s.remotePort)).size).toBe(1);
  });

  it('a refused node is retried on the other one; a silent node answers 504 after the read timeout', async () => {
    for (let i = 0; i < 4; i++) expect((await fetch(`${gw().url}/retry/x`)).status).toBe(200);
    expect((await fetch(`${gw().url}/silent`)).status).toBe(504);
  });

  it('a client that goes away mid-body closes the upstream connection', async () => {
    const before = endlessClosed;
    const ac = new AbortController();
    const r = await fetch(`${gw().url}/endless`, { signal: ac.signal });
    const reader = r.body!.getReader();
    await reader.read();
    ac.abort();
    await waitFor(() => endlessClosed > before, 5000);
  });
});

describe('where the socket client and undici differ', () => {
  it('a 100 Continue the gateway did not ask for is skipped (undici: bad response, 502)', async () => {
    const s = await fetch(`${gws.socket.url}/early`);
    expect(s.status).toBe(200);
    expect(await s.text()).toBe('after 100');
    expect((await fetch(`${gws.undici.url}/early`)).status).toBe(502);
  });

  it('a kept-alive connection that died while idle: the GET is re-sent on a fresh connection', async () => {
    const before = stale.accepted();
    expect(await (await fetch(`${gws.socket.url}/stale`)).text()).toBe(`conn ${before + 1}`);
    expect(await (await fetch(`${gws.socket.url}/stale`)).text()).toBe(`conn ${before + 2}`);
  });
});
