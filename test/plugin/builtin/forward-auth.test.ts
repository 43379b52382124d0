import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forwardAuthPlugin as def } from '../../../src/plugin/builtin/forward-auth.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { freePort } from '../../helpers/ports.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { confError } from '../helpers.ts';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** Set when the slow endpoint of the authorization service answered (it must not, before the gateway's timeout). */
let slowAnswered = false;

/** A real authorization service: token "good" passes with identity headers; anything else gets 403. */
async function startAuthService(): Promise<{ url: string; seen: Seen[]; connections: () => number; close(): Promise<void> }> {
  const seen: Seen[] = [];
  let connections = 0;
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (req.url === '/slow') {
        // Answers only after 10 s; `slowAnswered` records whether it ever did before the gateway gave up.
        const t = setTimeout(() => {
          slowAnswered = true;
          res.end('late');
        }, 10_000);
        res.once('close', () => clearTimeout(t));
        return;
      }
      if (req.headers.authorization === 'good' || body === 'let me in') {
        res.writeHead(200, { 'x-user-id': 'u-42', 'x-role': 'admin' });
        return void res.end('ok');
      }
      res.writeHead(403, { 'x-reason': 'bad token', 'x-secret-internal': 'nope', 'content-type': 'text/plain' });
      res.end('denied by auth service');
    });
  });
  srv.on('connection', () => connections++);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    connections: () => connections,
    close: () => new Promise((r) => {
      srv.closeAllConnections();
      srv.close(() => r());
    }),
  };
}

describe('forward-auth', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let auth: Awaited<ReturnType<typeof startAuthService>>;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startEcho('a');
    auth = await startAuthService();
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/1', {
      uri: '/fa/*',
      plugins: {
        'forward-auth': {
          uri: `${auth.url}/auth?x=1`,
          request_headers: ['Authorization'],
          upstream_headers: ['X-User-ID', 'X-Role', 'X-Absent'],
          client_headers: ['X-Reason'],
          extra_headers: { 'X-Client': '$remote_addr', 'X-Static': 'v1' },
        },
      },
      upstream,
    });
    await gw.put('/routes/2', {
      uri: '/post/*',
      plugins: { 'forward-auth': { uri: `${auth.url}/auth`, request_method: 'POST', max_req_body_size: 64, keepalive: false } },
      upstream,
    });
    const dead = `http://127.0.0.1:${await freePort()}/auth`;
    await gw.put('/routes/3', { uri: '/dead/*', plugins: { 'forward-auth': { uri: dead } }, upstream });
    await gw.put('/routes/4', { uri: '/degrade/*', plugins: { 'forward-auth': { uri: dead, allow_degradation: true } }, upstream });
    await gw.put('/routes/5', { uri: '/slow/*', plugins: { 'forward-auth': { uri: `${auth.url}/slow`, timeout: 200, status_on_error: 503 } }, upstream });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
    await auth?.close();
  });

  it('validates confs', () => {
    expect(confError(def, {})).not.toBeNull();
    expect(confError(def, { uri: 'http://a/b', request_method: 'PUT' })).not.toBeNull();
    expect(confError(def, { uri: 'http://a/b', timeout: 0 })).not.toBeNull();
    expect(confError(def, { uri: 'not a url' })).not.toBeNull();
    expect(confError(def, { uri: 'http://a/b', extra_headers: {} })).not.toBeNull();
    expect(confError(def, { uri: 'http://a/b' })).toBeNull();
  });

  it('sends X-Forwarded-* and the configured headers, copies upstream_headers on success', async () => {
    // undici's request (unlike fetch) may set Host
    const r = await request(`${gw.url}/fa/p?q=1`, {
      headers: { authorization: 'good', 'x-role': 'forged', 'x-absent': 'forged', host: 'api.example.com' },
    });
    expect(r.statusCode).toBe(200);
    const echo = (await r.body.json()) as { headers: Record<string, string> };
    expect(echo.headers['x-user-id']).toBe('u-42');
    expect(echo.headers['x-role']).toBe('admin');
    expect(echo.headers['x-absent']).toBeUndefined();
    const s = auth.seen.at(-1)!;
    expect(s.method).toBe('GET');
    expect(s.url).toBe('/auth?x=1');
    expect(s.headers['x-forwarded-proto']).toBe('http');
    expect(s.headers['x-forwarded-method']).toBe('GET');
    expect(s.headers['x-forwarded-host']).toBe('api.example.com');
    expect(s.headers['x-forwarded-uri']).toBe('/fa/p?q=1');
    expect(s.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(s.headers['x-client']).toBe('127.0.0.1');
    expect(s.headers['x-static']).toBe('v1');
    expect(s.headers.authorization).toBe('good');
  });

  it('relays the auth service refusal with its status, body and client_headers only', async () => {
    const before = up.seen.length;
    const r = await fetch(`${gw.url}/fa/p`, { method: 'DELETE', headers: { authorization: 'bad' } });
    expect(r.status).toBe(403);
    expect(await r.text()).toBe('denied by auth service');
    expect(r.headers.get('x-reason')).toBe('bad token');
    expect(r.headers.get('x-secret-internal')).toBeNull();
    expect(auth.seen.at(-1)!.headers['x-forwarded-method']).toBe('DELETE');
    expect(up.seen.length).toBe(before);
  });

  it('POST mode forwards the body, and 413 above max_req_body_size', async () => {
    let r = await fetch(`${gw.url}/post/x`, { method: 'POST', body: 'let me in' });
    expect(r.status).toBe(200);
    await r.arrayBuffer();
    const s = auth.seen.at(-1)!;
    expect(s.method).toBe('POST');
    expect(s.body).toBe('let me in');
    expect(s.headers.connection).toBe('close');
    r = await fetch(`${gw.url}/post/x`, { method: 'POST', body: 'x'.repeat(65) });
    expect(r.status).toBe(413);
  });

  it('unreachable service: status_on_error, or pass with allow_degradation', async () => {
    let r = await fetch(`${gw.url}/dead/x`);
    expect(r.status).toBe(403);
    await r.arrayBuffer();
    r = await fetch(`${gw.url}/degrade/x`);
    expect(r.status).toBe(200);
    await r.arrayBuffer();
    r = await fetch(`${gw.url}/slow/x`);
    expect(r.status).toBe(503);
    await r.arrayBuffer();
    // The 200 ms timeout answered, not the service (which would only answer after 10 s).
    expect(slowAnswered).toBe(false);
  });

  it('reuses connections with keepalive (default)', async () => {
    const before = auth.connections();
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${gw.url}/fa/p`, { headers: { authorization: 'good' } });
      await r.arrayBuffer();
    }
    expect(auth.connections() - before).toBeLessThanOrEqual(1);
  });
});
