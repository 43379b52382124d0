// The socket-level upstream HTTP/1.1 client (src/upstream/h1) against real peers: node:http and https servers,
// nginx, and a scripted raw upstream that sends malformed, split, partial or missing responses. Most cases go
// through dispatch() with Pools({ http1Client: 'socket' }), the path the proxy takes; the handler contract
// (undici's call order) is checked on H1Pool directly.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { JsonObject } from '../../src/config/resources.ts';
import { BalancerRegistry } from '../../src/upstream/balancer.ts';
import { setupBalancers } from '../../src/upstream/balancers.ts';
import { dispatch, Pools, type BodySink, type DispatchOptions, type DispatchResult, type ProxiedResponse } from '../../src/upstream/dispatch.ts';
import { H1Pool } from '../../src/upstream/h1/pool.ts';
import { UpstreamRuntime } from '../../src/upstream/upstream.ts';
import { startNginxFiles, type NginxUpstream } from '../helpers/nginx.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { rawUpstream, reply, type RawUpstream, type Respond } from './h1-client-peers.ts';

const registry = new BalancerRegistry();
setupBalancers(registry);
const pools = new Pools({ http1Client: 'socket' });
const opts: DispatchOptions = { connectTimeoutMs: 2000, sendTimeoutMs: 5000, readTimeoutMs: 5000 };

const closers: (() => Promise<void>)[] = [];
let tmp: { dir: string; cleanup(): Promise<void> };
let cert = '';
let key = '';
let nginx: NginxUpstream | null = null;

beforeAll(async () => {
  tmp = await tempDir('swy-h1c-');
  const kp = path.join(tmp.dir, 'key.pem');
  const cp = path.join(tmp.dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', kp, '-out', cp,
    '-days', '1', '-subj', '/CN=app.test', '-addext', 'subjectAltName=DNS:app.test'], { stdio: 'ignore' });
  cert = readFileSync(cp, 'utf8');
  key = readFileSync(kp, 'utf8');
});

afterAll(async () => {
  await pools.close();
  for (const c of closers) await c();
  await nginx?.stop();
  await tmp?.cleanup();
});

function upstream(port: number, conf: JsonObject = {}): UpstreamRuntime {
  return new UpstreamRuntime({ key: `u${port}`, registry, conf: { nodes: [{ host: '127.0.0.1', port, weight: 1 }], ...conf } });
}

type Req = Parameters<typeof dispatch>[1];

async function call(u: UpstreamRuntime, p: string, extra: Partial<Req> = {}, o = opts): Promise<DispatchResult> {
  return await dispatch(pools.get(u, u.endpoints[0]!), { method: 'GET', path: p, headers: { host: 'app.test' }, body: null, ...extra }, o);
}

function ok(r: DispatchResult): ProxiedResponse {
  if (!r.ok) throw new Error(`${r.kind}: ${r.message}`);
  return r;
}

/** The body through pipeTo (the proxy's path): bytes, and how it ended. */
function drain(r: ProxiedResponse): Promise<{ body: Buffer; error: (Error & { code?: string }) | null; trailers: Record<string, string> }> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    r.pipeTo({
      write: (c) => {
        parts.push(Buffer.from(c));
        return true;
      },
      end: (trailers) => resolve({ body: Buffer.concat(parts), error: null, trailers }),
      error: (err) => resolve({ body: Buffer.concat(parts), error: err, trailers: {} }),
    });
  });
}

async function text(r: DispatchResult): Promise<string> {
  const d = await drain(ok(r));
  if (d.error !== null) throw d.error;
  return d.body.toString();
}

async function raw(respond: Respond): Promise<RawUpstream> {
  const u = await rawUpstream(respond);
  closers.push(() => u.close());
  return u;
}

async function listen(s: http.Server | https.Server): Promise<number> {
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise((resolve) => {
    s.closeAllConnections();
    s.close(() => resolve());
  }));
  return (s.address() as net.AddressInfo).port;
}

/** Runs one request on `pool` recording the handler calls in order. */
function record(pool: H1Pool, o: Partial<Dispatcher.DispatchOptions> = {}): Promise<{ events: string[]; body: string; error: (Error & { code?: string }) | null }> {
  return new Promise((resolve) => {
    const events: string[] = [];
    let body = '';
    pool.dispatch({ method: 'GET', path: '/', headers: { host: 'app.test' }, body: null, headersTimeout: 2000, bodyTimeout: 2000, ...o } as Dispatcher.DispatchOptions, {
      onRequestStart: () => void events.push('requestStart'),
      onResponseStart: (_c, status) => void events.push(`responseStart ${status}`),
      onResponseData: (_c, chunk) => {
        if (events.at(-1) !== 'data') events.push('data');
        body += chunk.toString();
      },
      onResponseEnd: (_c, trailers) => {
        events.push(`end ${JSON.stringify(trailers)}`);
        resolve({ events, body, error: null });
      },
      onResponseError: (_c, err) => {
        events.push(`error ${(err as { code?: string }).code}`);
        resolve({ events, body, error: err });
      },
    });
  });
}

function h1Pool(port: number, extra: Partial<ConstructorParameters<typeof H1Pool>[0]> = {}): H1Pool {
  const p = new H1Pool({
    host: '127.0.0.1', port, tls: null, connectTimeoutMs: 2000, keepAliveSize: 10, idleTimeoutMs: 60_000, maxRequests: 0,
    maxConnections: null, maxHeaderSize: 16 * 1024, ...extra,
  });
  closers.push(() => p.destroy());
  return p;
}

describe('selection', () => {
  it('HTTP/1.1 upstreams get the socket client, h2 ones keep undici', () => {
    const u = upstream(1);
    expect(pools.get(u, u.endpoints[0]!).dispatcher).toBeInstanceOf(H1Pool);
    const h2 = upstream(2, { http2: true });
    expect(pools.get(h2, h2.endpoints[0]!).dispatcher).not.toBeInstanceOf(H1Pool);
    const undici = new Pools();
    expect(undici.get(u, u.endpoints[0]!).dispatcher).not.toBeInstanceOf(H1Pool);
    void undici.close();
  });
});

describe('requests and responses against node:http', () => {
  let port = 0;
  const seen: { method: string; url: string; headers: http.IncomingHttpHeaders; sha: string; n: number; conn: number }[] = [];
  let conns = 0;

  beforeAll(async () => {
    const server = http.createServer((req, res) => {
      const h = createHash('sha256');
      let n = 0;
      req.on('data', (c: Buffer) => {
        h.update(c);
        n += c.length;
      });
      req.on('end', () => {
        const sha = h.digest('hex');
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, sha, n, conn: (req.socket as net.Socket & { n?: number }).n ?? 0 });
        if (req.url === '/trailers') {
          res.writeHead(200, { trailer: 'x-sha', 'set-cookie': ['a=1', 'b=2'] });
          res.write(sha);
          res.addTrailers({ 'x-sha': sha });
          return void res.end();
        }
        if (req.url === '/204') return void res.writeHead(204).end();
        if (req.url === '/304') return void res.writeHead(304, { etag: '"e"' }).end();
        const body = JSON.stringify({ sha, n });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(req.method === 'HEAD' ? undefined : body);
      });
    });
    server.on('connection', (s: net.Socket & { n?: number }) => (s.n = ++conns));
    port = await listen(server);
  });

  it('GET: status, repeated headers, chunked body and trailers; the head carries host and keep-alive', async () => {
    const u = upstream(port);
    const r = ok(await call(u, '/trailers', { headers: { host: 'app.test', 'x-test': 'v', 'x-multi': ['1', '2'] } }));
    expect(r.status).toBe(200);
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    const d = await drain(r);
    expect(d.trailers).toEqual({ 'x-sha': d.body.toString() });
    const s = seen.at(-1)!;
    expect(s.headers).toMatchObject({ host: 'app.test', connection: 'keep-alive', 'x-test': 'v', 'x-multi': '1, 2' });
    expect(s.headers['content-length']).toBeUndefined();
  });

  it('request bodies: Buffer with content-length, stream with content-length, stream without (chunked)', async () => {
    const u = upstream(port);
    const payload = Buffer.alloc(300_000, 7);
    const sha = createHash('sha256').update(payload).digest('hex');
    expect(JSON.parse(await text(await call(u, '/buf', { method: 'POST', body: payload, headers: { host: 'a', 'content-length': String(payload.length) } })))).toEqual({ sha, n: payload.length });
    expect(seen.at(-1)!.headers['content-length']).toBe(String(payload.length));
    const pieces = () => Readable.from([payload.subarray(0, 1000), payload.subarray(1000, 200_000), payload.subarray(200_000)]);
    expect(JSON.parse(await text(await call(u, '/cl', { method: 'PUT', body: pieces(), headers: { host: 'a', 'content-length': String(payload.length) } })))).toEqual({ sha, n: payload.length });
    expect(seen.at(-1)!.headers['transfer-encoding']).toBeUndefined();
    expect(JSON.parse(await text(await call(u, '/te', { method: 'POST', body: pieces(), headers: { host: 'a' } })))).toEqual({ sha, n: payload.length });
    expect(seen.at(-1)!.headers['transfer-encoding']).toBe('chunked');
    // An empty POST still says content-length: 0; a GET says nothing.
    await text(await call(u, '/empty', { method: 'POST' }));
    expect(seen.at(-1)!.headers['content-length']).toBe('0');
  });

  it('a streamed body shorter than its content-length fails the request (UND_ERR_REQ_CONTENT_LENGTH_MISMATCH)', async () => {
    const r = await call(upstream(port), '/short', { method: 'POST', body: Readable.from([Buffer.from('abc')]), headers: { host: 'a', 'content-length': '10' } });
    expect(r).toMatchObject({ ok: false, kind: 'protocol', retryable: false });
  });

  it('HEAD with content-length, 204 and 304 have no body, and the connection is reused after each', async () => {
    const u = upstream(port, { keepalive_pool: { size: 1 } });
    const before = conns;
    const head = ok(await call(u, '/x', { method: 'HEAD' }));
    expect(head.headers['content-length']).toBe(String('{"sha":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","n":0}'.length));
    expect((await drain(head)).body.length).toBe(0);
    const r204 = ok(await call(u, '/204'));
    expect(r204.status).toBe(204);
    expect((await drain(r204)).body.length).toBe(0);
    const r304 = ok(await call(u, '/304'));
    expect(r304.status).toBe(304);
    expect((await drain(r304)).body.length).toBe(0);
    expect(JSON.parse(await text(await call(u, '/after')))).toMatchObject({ n: 0 });
    expect(conns - before).toBe(1);
    expect(new Set(seen.slice(-4).map((s) => s.conn)).size).toBe(1);
  });

  it('keep-alive: sequential requests share one connection; concurrent ones open more and all are reused', async () => {
    const u = upstream(port, { keepalive_pool: { size: 8 } });
    const before = conns;
    for (let i = 0; i < 10; i++) await text(await call(u, `/seq/${i}`));
    expect(conns - before).toBe(1);
    const batch = async () => Promise.all(Array.from({ length: 4 }, async (_, i) => text(await call(u, `/par/${i}`))));
    await batch();
    const opened = conns - before;
    expect(opened).toBeGreaterThanOrEqual(2);
    expect(opened).toBeLessThanOrEqual(4);
    await batch();
    await batch();
    expect(conns - before).toBe(opened);
  });

  it('keepalive_pool.requests bounds the requests per connection; the last one says connection: close', async () => {
    const u = upstream(port, { keepalive_pool: { requests: 3 } });
    const before = conns;
    const start = seen.length;
    for (let i = 0; i < 7; i++) await text(await call(u, `/n/${i}`));
    expect(conns - before).toBe(3);
    expect(seen.slice(start).map((s) => s.headers.connection)).toEqual(['keep-alive', 'keep-alive', 'close', 'keep-alive', 'keep-alive', 'close', 'keep-alive']);
  });

  it('keepalive_pool.size 0 turns keep-alive off: connection: close on every request', async () => {
    const u = upstream(port, { keepalive_pool: { size: 0 } });
    const before = conns;
    for (let i = 0; i < 3; i++) await text(await call(u, `/off/${i}`));
    expect(conns - before).toBe(3);
    expect(seen.at(-1)!.headers.connection).toBe('close');
  });
});

describe('response framing from a scripted upstream', () => {
  it('a response split into single bytes, chunked with extensions and trailers, arrives intact', async () => {
    const wire = 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-t\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-t: done\r\n\r\n';
    const up = await raw((s) => {
      let i = 0;
      const next = (): void => {
        if (i >= wire.length) return;
        s.write(wire[i++]!, 'latin1', next);
      };
      next();
    });
    const r = ok(await call(upstream(up.port), '/'));
    const d = await drain(r);
    expect(d.body.toString()).toBe('hello world');
    expect(d.trailers).toEqual({ 'x-t': 'done' });
  });

  it('content-length bodies (read without llhttp) split at every byte, or with the head, arrive intact; the connection is reused', async () => {
    const body = '0123456789'.repeat(30);
    const wire = reply(200, body, { 'x-a': '1' });
    const up = await raw((s, req) => {
      if (req.path === '/bytes') {
        let i = 0;
        const next = (): void => {
          if (i < wire.length) s.write(wire[i++]!, 'latin1', next);
        };
        next();
      } else {
        // The head plus a few body bytes in one segment, the rest after the client has read them.
        const cut = wire.indexOf('\r\n\r\n') + 7;
        s.write(wire.slice(0, cut), () => setTimeout(() => s.write(wire.slice(cut)), 20));
      }
    });
    const u = upstream(up.port);
    for (const p of ['/bytes', '/split', '/bytes']) {
      const r = ok(await call(u, p));
      expect(r.headers['x-a']).toBe('1');
      expect((await drain(r)).body.toString()).toBe(body);
    }
    expect(up.accepted()).toBe(1);
  });

  it('1xx responses (100, 103) before the final one are skipped', async () => {
    const up = await raw((s) => s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n' + reply(201, 'made')));
    const r = ok(await call(upstream(up.port), '/'));
    expect(r.status).toBe(201);
    expect(r.headers.link).toBeUndefined();
    expect((await drain(r)).body.toString()).toBe('made');
  });

  it('read-until-close bodies (no length, HTTP/1.0 and 1.1) end at FIN; the connection is not reused', async () => {
    const up = await raw((s, req) => {
      s.end(`HTTP/1.${req.path === '/10' ? 0 : 1} 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil close ${req.path}`);
    });
    const u = upstream(up.port);
    expect(await text(await call(u, '/10'))).toBe('until close /10');
    expect(await text(await call(u, '/11'))).toBe('until close /11');
    expect(up.accepted()).toBe(2);
  });

  it('Connection: close from the upstream is honoured', async () => {
    const up = await raw((s) => s.write(reply(200, 'bye', { connection: 'close' })));
    const u = upstream(up.port);
    await text(await call(u, '/'));
    await text(await call(u, '/'));
    expect(up.accepted()).toBe(2);
  });

  it('malformed responses are protocol failures, never retried: bad status line, duplicate content-length, bad chunk size', async () => {
    for (const wire of [
      'HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n',
      'HTTQ/1.1 200 OK\r\ncontent-length: 0\r\n\r\n',
      'HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab',
      'HTTP/1.1 200 OK\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nbad header\r\n\r\n',
    ]) {
      const up = await raw((s) => s.write(wire));
      const r = await call(upstream(up.port), '/');
      expect(r, wire).toMatchObject({ ok: false, kind: 'protocol', retryable: false });
    }
    const up = await raw((s) => s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'));
    const d = await drain(ok(await call(upstream(up.port), '/')));
    expect(d.error).not.toBeNull();
  });

  it('a body cut mid-way fails after the head (UND_ERR_SOCKET), never completes', async () => {
    const up = await raw((s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n' + 'x'.repeat(40)));
    const d = await drain(ok(await call(upstream(up.port), '/')));
    expect(d.body.length).toBe(40);
    expect(d.error?.code).toBe('UND_ERR_SOCKET');
  });

  it('a close before the head is a retryable reset for GET, not for POST', async () => {
    const up = await raw((s) => s.destroy());
    expect(await call(upstream(up.port), '/')).toMatchObject({ ok: false, kind: 'reset', retryable: true });
    expect(await call(upstream(up.port), '/', { method: 'POST', body: Buffer.from('x') })).toMatchObject({ ok: false, kind: 'reset', retryable: false });
  });

  it('bytes after a complete response: the connection is dropped, the next request gets a fresh one', async () => {
    const up = await raw((s) => s.write(reply(200, 'ok') + 'HTTP/1.1 200 OK\r\n'));
    const u = upstream(up.port);
    expect(await text(await call(u, '/'))).toBe('ok');
    expect(await text(await call(u, '/'))).toBe('ok');
    expect(up.accepted()).toBe(2);
  });

  it('a response head over max header size (16 KiB) is refused', async () => {
    const up = await raw((s) => s.write(reply(200, 'x', { 'x-big': 'b'.repeat(20_000) })));
    expect(await call(upstream(up.port), '/')).toMatchObject({ ok: false, kind: 'protocol' });
  });

  it('response header bytes pass through as they are (obs-text), and a CR/LF in a request header is refused', async () => {
    const up = await raw((s) => s.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nx-name: caf'), Buffer.from([0xe9]), Buffer.from('\r\ncontent-length: 0\r\n\r\n')])));
    const r = ok(await call(upstream(up.port), '/'));
    expect(Buffer.from(r.headers['x-name'] as string, 'latin1')).toEqual(Buffer.from([0x63, 0x61, 0x66, 0xe9]));
    await drain(r);
    const bad = await call(upstream(up.port), '/', { headers: { host: 'a', 'x-evil': 'a\r\nx-injected: 1' } });
    expect(bad).toMatchObject({ ok: false, kind: 'protocol' });
    expect(up.requests.some((q) => q.headers['x-injected'] !== undefined)).toBe(false);
  });
});

describe('connection reuse and loss', () => {
  it('an idle connection the upstream closes is dropped; the next request gets a fresh one', async () => {
    const up = await raw((s) => {
      s.write(reply(200, 'ok'));
      setImmediate(() => s.end());
    });
    const u = upstream(up.port);
    await text(await call(u, '/'));
    await waitFor(() => up.open() === 0, 5000);
    expect(await text(await call(u, '/'))).toBe('ok');
    expect(up.accepted()).toBe(2);
  });

  it('a reused connection that dies before answering: GET is sent again on a fresh one (nginx), POST fails', async () => {
    // The upstream answers the first request of every connection and resets on the second, unanswered.
    const up = await raw((s, req) => {
      if (req.seq === 1) s.write(reply(200, `conn ${req.conn}`));
      else s.resetAndDestroy();
    });
    const u = upstream(up.port);
    expect(await text(await call(u, '/'))).toBe('conn 1');
    expect(await text(await call(u, '/'))).toBe('conn 2');
    expect(up.accepted()).toBe(2);
    expect(await call(u, '/', { method: 'POST', body: Buffer.from('x') })).toMatchObject({ ok: false, kind: 'reset', retryable: false });
  });

  it('the Keep-Alive timeout hint of the upstream bounds the idle time', async () => {
    // timeout=1 leaves no margin (undici's: one second): the connection is not kept.
    const up = await raw((s) => s.write(reply(200, 'ok', { 'keep-alive': 'timeout=1' })));
    const u = upstream(up.port);
    await text(await call(u, '/'));
    await text(await call(u, '/'));
    expect(up.accepted()).toBe(2);
  });

  it('keepalive_pool.idle_timeout closes an idle connection', async () => {
    const up = await raw((s) => s.write(reply(200, 'ok')));
    const u = upstream(up.port, { keepalive_pool: { idle_timeout: 0.3 } });
    await text(await call(u, '/'));
    expect(up.open()).toBe(1);
    await waitFor(() => up.open() === 0, 5000);
  });

  it('maxConnections queues requests in order on the open connections', async () => {
    const up = await raw((s, req) => setTimeout(() => s.write(reply(200, req.path)), 20));
    const pool = h1Pool(up.port, { maxConnections: 2 });
    const all = await Promise.all(Array.from({ length: 6 }, (_, i) => record(pool, { path: `/${i}` })));
    expect(all.map((r) => r.body)).toEqual(['/0', '/1', '/2', '/3', '/4', '/5']);
    expect(up.accepted()).toBe(2);
  });
});

describe('timeouts', () => {
  it('no response head within the read timeout: UND_ERR_HEADERS_TIMEOUT, retryable for GET', async () => {
    const up = await raw(() => undefined);
    const r = await call(upstream(up.port), '/', {}, { ...opts, readTimeoutMs: 300 });
    expect(r).toMatchObject({ ok: false, kind: 'timeout', retryable: true });
    await waitFor(() => up.open() === 0, 5000);
  });

  it('a stalled body: UND_ERR_BODY_TIMEOUT after the head', async () => {
    const up = await raw((s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc'));
    const d = await drain(ok(await call(upstream(up.port), '/', {}, { ...opts, readTimeoutMs: 300 })));
    expect(d.body.toString()).toBe('abc');
    expect(d.error?.code).toBe('UND_ERR_BODY_TIMEOUT');
  });

  it('a TLS handshake that never completes: UND_ERR_CONNECT_TIMEOUT', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const sockets = new Set<net.Socket>();
    silent.on('connection', (s) => sockets.add(s));
    closers.push(() => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      silent.close(() => resolve());
    }));
    const port = (silent.address() as net.AddressInfo).port;
    const r = await call(upstream(port, { scheme: 'https', timeout: { connect: 0.3, send: 5, read: 5 } }), '/');
    expect(r).toMatchObject({ ok: false, kind: 'timeout', retryable: true });
    expect(r.ok === false && r.message).toMatch(/Connect Timeout/);
  });

  it('a refused connection is a retryable connect failure', async () => {
    const port = await freePort();
    expect(await call(upstream(port), '/', { method: 'POST', body: Buffer.from('x') })).toMatchObject({ ok: false, kind: 'connect', retryable: true });
  });
});

describe('flow control', () => {
  it('a consumer that stops reading pauses the upstream socket (bounded memory), and resuming delivers every byte', async () => {
    const total = 64 * 1024 * 1024;
    let written = 0;
    let blocked = false;
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-length': String(total) });
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = (): void => {
        blocked = false;
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) {
            blocked = true;
            return void res.once('drain', pump);
          }
        }
        res.end();
      };
      pump();
    });
    const port = await listen(server);
    const r = ok(await call(upstream(port), '/'));
    let received = 0;
    let flowing = false;
    const done = new Promise<void>((resolve, reject) => {
      const sink: BodySink = {
        write: (c) => {
          received += c.length;
          return flowing;
        },
        end: () => resolve(),
        error: reject,
      };
      r.pipeTo(sink);
    });
    // The upstream's writes back up once this side stops reading: it stays blocked with no progress (without
    // backpressure it would write all 64 MB and end).
    let last = -1;
    let stable = 0;
    await waitFor(() => {
      stable = blocked && written === last ? stable + 1 : 0;
      last = written;
      return stable >= 3;
    }, 20_000, 100);
    expect(written).toBeLessThan(total / 2);
    expect(received).toBeLessThan(16 * 1024 * 1024);
    flowing = true;
    r.resume();
    await done;
    expect(received).toBe(total);
  });

  it('aborting the exchange mid-body destroys the upstream connection', async () => {
    let closed = false;
    const server = http.createServer((_req, res) => {
      res.writeHead(200);
      const timer = setInterval(() => res.write('tick\n'), 10);
      res.on('close', () => {
        clearInterval(timer);
        closed = true;
      });
    });
    const port = await listen(server);
    const r = ok(await call(upstream(port), '/'));
    let got = 0;
    await new Promise<void>((resolve) => {
      r.pipeTo({
        write: (c) => {
          got += c.length;
          if (got >= 20) resolve();
          return true;
        },
        end: () => resolve(),
        error: () => resolve(),
      });
    });
    r.abort(new Error('client went away'));
    await waitFor(() => closed, 5000);
  });
});

describe('handler contract (undici call order)', () => {
  it('requestStart, responseStart once, data, end with trailers', async () => {
    const up = await raw((s) => s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-a: 1\r\n\r\n'));
    const r = await record(h1Pool(up.port));
    expect(r.events).toEqual(['requestStart', 'responseStart 200', 'data', 'end {"x-a":"1"}']);
    expect(r.body).toBe('abc');
  });

  it('an error before the head: requestStart then error, never a responseStart or end', async () => {
    const up = await raw((s) => s.destroy());
    const r = await record(h1Pool(up.port));
    expect(r.events).toEqual(['requestStart', 'error UND_ERR_SOCKET']);
  });

  it('an abort during requestStart (client gone while queued) fails the request without sending it', async () => {
    const up = await raw((s) => s.write(reply(200)));
    const pool = h1Pool(up.port);
    const err = await new Promise<Error>((resolve) => {
      pool.dispatch({ method: 'GET', path: '/', headers: { host: 'a' }, body: null }, {
        onRequestStart: (c) => c.abort(new Error('gone')),
        onResponseError: (_c, e) => resolve(e),
      });
    });
    expect(err.message).toBe('gone');
    expect((await record(pool)).events.at(-1)).toMatch(/^end/);
    expect(up.requests).toHaveLength(1);
    // The cancelled request's connection was still connecting, had sent nothing, and served the next request.
    expect(up.accepted()).toBe(1);
  });

  it('requests cancelled while their connections connect leave those connections to the next requests', async () => {
    const up = await raw((s) => s.write(reply(200)));
    const pool = h1Pool(up.port);
    // Eight requests open eight connections and are cancelled at once (an HTTP/2 rapid reset's pattern).
    const errors = await Promise.all(
      Array.from({ length: 8 }, () => new Promise<Error>((resolve) => {
        pool.dispatch({ method: 'GET', path: '/', headers: { host: 'a' }, body: null }, {
          onRequestStart: (c) => c.abort(new Error('reset')),
          onResponseError: (_c, e) => resolve(e),
        });
      })),
    );
    expect(errors.map((e) => e.message)).toEqual(Array(8).fill('reset'));
    const done = await Promise.all(Array.from({ length: 8 }, () => record(pool)));
    for (const r of done) expect(r.events.at(-1)).toMatch(/^end/);
    expect(up.requests).toHaveLength(8);
    expect(up.accepted()).toBe(8);
  });

  it('a handler that throws on data fails its own request and leaves the process running', async () => {
    const up = await raw((s) => s.write(reply(200, 'body')));
    const pool = h1Pool(up.port);
    const err = await new Promise<Error>((resolve) => {
      pool.dispatch({ method: 'GET', path: '/', headers: { host: 'a' }, body: null }, {
        onResponseData: () => {
          throw new Error('sink broke');
        },
        onResponseError: (_c, e) => resolve(e),
      });
    });
    expect(err.message).toBe('sink broke');
    expect((await record(pool)).body).toBe('body');
  });

  it('close() lets running requests finish and refuses new ones; destroy() fails running ones', async () => {
    const up = await raw((s, req) => {
      if (req.path === '/slow') setTimeout(() => s.write(reply(200, 'late')), 100);
      // '/never' is not answered.
    });
    const pool = h1Pool(up.port);
    const slow = record(pool, { path: '/slow' });
    await waitFor(() => up.requests.length === 1, 5000);
    const closing = pool.close();
    expect((await record(pool)).events).toEqual(['error UND_ERR_CLOSED']);
    expect((await slow).body).toBe('late');
    await closing;
    expect(pool.size).toBe(0);
    const pool2 = h1Pool(up.port);
    const never = record(pool2, { path: '/never' });
    await waitFor(() => up.requests.length === 2, 5000);
    await pool2.destroy();
    expect((await never).events).toEqual(['requestStart', 'error UND_ERR_DESTROYED']);
  });
});

describe('TLS and nginx', () => {
  it('https: verify off by default; verify on refuses a self-signed certificate; SNI from the Host header', async () => {
    let sni: string | false | null | undefined;
    const server = https.createServer({ key, cert }, (req, res) => {
      sni = (req.socket as import('node:tls').TLSSocket).servername;
      res.end('secure');
    });
    const port = await listen(server);
    expect(await text(await call(upstream(port, { scheme: 'https' }), '/'))).toBe('secure');
    expect(sni).toBe('app.test');
    expect(await call(upstream(port, { scheme: 'https', tls: { verify: true } }), '/')).toMatchObject({ ok: false, kind: 'connect' });
  });

  it('nginx as the upstream: static file, HEAD, 404, keep-alive reuse', async () => {
    nginx = await startNginxFiles({ 'index.html': 'hello from nginx', 'big.bin': 'z'.repeat(1_000_000) });
    const u = upstream(nginx.port);
    expect(await text(await call(u, '/index.html'))).toBe('hello from nginx');
    const head = ok(await call(u, '/big.bin', { method: 'HEAD' }));
    expect(head.headers['content-length']).toBe('1000000');
    await drain(head);
    expect((await drain(ok(await call(u, '/big.bin')))).body.length).toBe(1_000_000);
    const missing = ok(await call(u, '/missing'));
    expect(missing.status).toBe(404);
    await drain(missing);
    const pool = pools.get(u, u.endpoints[0]!).dispatcher as H1Pool;
    expect(pool.size).toBe(1);
  });
});
