// forward-auth over h2c and on WebSocket upgrades: the authorization service sees the same X-Forwarded-* view of
// the request as over HTTP/1.1, its refusal reaches the client, and a refused upgrade never reaches the upstream.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { h2Request, startWsUpstream, wsRoundTrip, type WsUpstream } from './auth-transports.ts';

type Echo = { headers: Record<string, string | undefined> };
interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Authorization service: `authorization: good` (or the POST body `let me in`) passes with identity headers. */
async function startAuthService(): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (req.headers.authorization === 'good' || body === 'let me in') {
        res.writeHead(200, { 'x-user-id': 'u-42' });
        return void res.end('ok');
      }
      res.writeHead(401, { 'x-reason': 'bad token', 'content-type': 'text/plain' });
      res.end('denied by auth service');
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise((r) => {
      srv.closeAllConnections();
      srv.close(() => r());
    }),
  };
}

describe('forward-auth over h2c and WebSocket upgrades', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let wsUp: WsUpstream;
  let auth: Awaited<ReturnType<typeof startAuthService>>;

  beforeAll(async () => {
    [gw, up, wsUp, auth] = await Promise.all([startTestGateway(), startEcho('a'), startWsUpstream(), startAuthService()]);
    const conf = {
      uri: `${auth.url}/auth`,
      request_headers: ['Authorization'],
      upstream_headers: ['X-User-ID'],
      client_headers: ['X-Reason'],
    };
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/get', { uri: '/fa/*', plugins: { 'forward-auth': conf }, upstream });
    await gw.put('/routes/post', { uri: '/fp/*', plugins: { 'forward-auth': { ...conf, request_method: 'POST' } }, upstream });
    await gw.put('/routes/ws', { uri: '/ws/*', enable_websocket: true, plugins: { 'forward-auth': conf }, upstream: { nodes: { [wsUp.addr]: 1 } } });
    await gw.put('/routes/wsp', {
      uri: '/wsp/*',
      enable_websocket: true,
      plugins: { 'forward-auth': { ...conf, request_method: 'POST' } },
      upstream: { nodes: { [wsUp.addr]: 1 } },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await wsUp?.close();
    await auth?.close();
  });

  it('h2c: the service sees the request as X-Forwarded-*; its identity header reaches the upstream, a forged one does not', async () => {
    let r = await h2Request(gw.url, { ':method': 'GET', ':path': '/fa/h2?q=1', authorization: 'good', 'x-user-id': 'forged' });
    expect(r.status).toBe(200);
    expect((JSON.parse(r.body) as Echo).headers['x-user-id']).toBe('u-42');
    const s = auth.seen.at(-1)!;
    expect(s.method).toBe('GET');
    expect(s.headers['x-forwarded-method']).toBe('GET');
    expect(s.headers['x-forwarded-proto']).toBe('http');
    expect(s.headers['x-forwarded-uri']).toBe('/fa/h2?q=1');
    expect(s.headers['x-forwarded-host']).toBe('127.0.0.1');
    expect(s.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(s.headers.authorization).toBe('good');

    const seen = up.seen.length;
    r = await h2Request(gw.url, { ':method': 'GET', ':path': '/fa/h2', authorization: 'bad', 'x-user-id': 'forged' });
    expect(r.status).toBe(401);
    expect(r.body).toBe('denied by auth service');
    expect(r.headers['x-reason']).toBe('bad token');
    expect(up.seen.length).toBe(seen);
  });

  it('h2c: request_method POST sends the client body to the service', async () => {
    let r = await h2Request(gw.url, { ':method': 'POST', ':path': '/fp/h2' }, 'let me in');
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.body) as Echo & { bodyLength: number };
    expect(echo.headers['x-user-id']).toBe('u-42');
    // the body the service read still reaches the upstream
    expect(echo.bodyLength).toBe('let me in'.length);
    expect(auth.seen.at(-1)!.body).toBe('let me in');
    r = await h2Request(gw.url, { ':method': 'POST', ':path': '/fp/h2' }, 'open sesame');
    expect(r.status).toBe(401);
    expect(auth.seen.at(-1)!.body).toBe('open sesame');
  });

  it('WebSocket: a refusal by the service refuses the upgrade before the upstream, with its status and body', async () => {
    const before = wsUp.upgrades.length;
    const res = await wsRoundTrip(`ws://127.0.0.1:${gw.port}/ws/x`, { authorization: 'bad' });
    expect(res).toEqual({ ok: false, status: 401, body: 'denied by auth service' });
    expect(auth.seen.at(-1)!.headers['x-forwarded-uri']).toBe('/ws/x');
    expect(wsUp.upgrades.length).toBe(before);
  });

  it('WebSocket: an accepted upgrade carries the service identity header upstream; the hop-by-hop upgrade headers stay ours', async () => {
    const res = await wsRoundTrip(`ws://127.0.0.1:${gw.port}/ws/y`, { authorization: 'good', 'x-user-id': 'forged' });
    expect(res).toEqual({ ok: true, echo: 'echo:ping' });
    expect(wsUp.upgrades.at(-1)!['x-user-id']).toBe('u-42');
    const s = auth.seen.at(-1)!;
    expect(s.headers['x-forwarded-method']).toBe('GET');
    expect(s.headers['x-forwarded-uri']).toBe('/ws/y');
    // The WebSocket handshake headers belong to the client's connection, not to the auth call.
    expect(s.headers.upgrade).toBeUndefined();
    expect(s.headers['sec-websocket-key']).toBeUndefined();
  });

  it('WebSocket: request_method POST on an upgrade (no body) asks the service and opens the tunnel', async () => {
    const n = auth.seen.length;
    const res = await wsRoundTrip(`ws://127.0.0.1:${gw.port}/wsp/x`, { authorization: 'good' });
    expect(res).toEqual({ ok: true, echo: 'echo:ping' });
    expect(auth.seen.length).toBe(n + 1);
    expect(auth.seen.at(-1)!.method).toBe('POST');
    expect(auth.seen.at(-1)!.body).toBe('');
    const refused = await wsRoundTrip(`ws://127.0.0.1:${gw.port}/wsp/x`, { authorization: 'bad' });
    expect(refused.ok).toBe(false);
  });
});
