import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import type { JsonObject } from '../../src/config/resources.ts';
import { BalancerRegistry } from '../../src/upstream/balancer.ts';
import { setupBalancers } from '../../src/upstream/balancers.ts';
import { dispatch, Pools, type DispatchOptions, type DispatchResult } from '../../src/upstream/dispatch.ts';
import { UpstreamRuntime } from '../../src/upstream/upstream.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir } from '../helpers/proc.ts';

const registry = new BalancerRegistry();
setupBalancers(registry);
const pools = new Pools();
const opts: DispatchOptions = { connectTimeoutMs: 2000, sendTimeoutMs: 5000, readTimeoutMs: 5000 };

type Closer = { close(cb?: () => void): unknown };
const servers: Closer[] = [];
let tmp: { dir: string; cleanup(): Promise<void> };
let cert = '';
let key = '';

function listen<T extends http.Server | https.Server | http2.Http2Server | http2.Http2SecureServer>(s: T): Promise<number> {
  servers.push(s);
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve((s.address() as AddressInfo).port)));
}

/** Shared request handler for the HTTP/1.1 and HTTP/2 compat servers. */
function handler(req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse): void {
  const url = req.url ?? '/';
  const r = res as http.ServerResponse;
  if (url === '/echo') {
    r.writeHead(200, { 'content-type': 'application/octet-stream', 'x-proto': String(req.httpVersion) });
    r.flushHeaders();
    (req as http.IncomingMessage).pipe(r);
    return;
  }
  if (url === '/slow') return; // never answers: read timeout
  if (url.startsWith('/info')) {
    r.setHeader('trailer', 'x-checksum');
    r.writeHead(200, { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'] });
    r.write(JSON.stringify({ host: req.headers.host ?? req.headers[':authority'], version: req.httpVersion, method: req.method, url, xt: req.headers['x-test'] ?? null, te: req.headers['transfer-encoding'] ?? null }));
    r.addTrailers({ 'x-checksum': 'abc' });
    r.end();
    return;
  }
  r.writeHead(404);
  r.end();
}

function upstream(port: number, conf: JsonObject = {}): UpstreamRuntime {
  return new UpstreamRuntime({ key: `u${port}`, registry, conf: { nodes: [{ host: '127.0.0.1', port, weight: 1 }], ...conf } });
}

async function call(u: UpstreamRuntime, p: string, extra: Partial<Parameters<typeof dispatch>[1]> = {}, o = opts): Promise<DispatchResult> {
  return await dispatch(pools.get(u, u.endpoints[0]!), { method: 'GET', path: p, headers: { host: 'app.test', 'x-test': '1' }, body: null, ...extra }, o);
}

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

let h1Port = 0;
let h1bPort = 0;
let tlsPort = 0;
let h2cPort = 0;
let h2Port = 0;

beforeAll(async () => {
  tmp = await tempDir('swy-dispatch-');
  const kp = path.join(tmp.dir, 'key.pem');
  const cp = path.join(tmp.dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', kp, '-out', cp,
    '-days', '1', '-subj', '/CN=app.test', '-addext', 'subjectAltName=DNS:app.test'], { stdio: 'ignore' });
  cert = readFileSync(cp, 'utf8');
  key = readFileSync(kp, 'utf8');
  h1Port = await listen(http.createServer(handler));
  h1bPort = await listen(http.createServer(handler));
  tlsPort = await listen(https.createServer({ key, cert }, handler));
  h2cPort = await listen(http2.createServer(handler));
  h2Port = await listen(http2.createSecureServer({ key, cert }, handler));
});

afterAll(async () => {
  await pools.close();
  for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
  await tmp?.cleanup();
});

async function expectInfo(u: UpstreamRuntime, version: string): Promise<void> {
  const r = await call(u, '/info?q=1');
  if (!r.ok) throw new Error(r.message);
  expect(r.status).toBe(200);
  expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
  const info = JSON.parse((await readAll(r.body)).toString());
  expect(info).toMatchObject({ host: 'app.test', version, method: 'GET', url: '/info?q=1', xt: '1' });
  expect(r.trailers()).toEqual({ 'x-checksum': 'abc' });
}

describe('dispatch', () => {
  it('HTTP/1.1 with keepalive, headers and trailers', async () => {
    const u = upstream(h1Port);
    await expectInfo(u, '1.1');
    await expectInfo(u, '1.1');
  });

  it('drops headers undici manages itself', async () => {
    const r = await call(upstream(h1Port), '/info', { headers: { host: 'app.test', connection: 'keep-alive', 'transfer-encoding': 'chunked', expect: '100-continue' } });
    if (!r.ok) throw new Error(r.message);
    expect(JSON.parse((await readAll(r.body)).toString()).te).toBeNull();
  });

  it('https with verify off (APISIX default), and verify on rejects a self-signed cert', async () => {
    await expectInfo(upstream(tlsPort, { scheme: 'https' }), '1.1');
    const r = await call(upstream(tlsPort, { scheme: 'https', tls: { verify: true } }), '/info');
    expect(r).toMatchObject({ ok: false, kind: 'connect', retryable: true });
  });

  it('h2c for scheme http with http2', async () => {
    await expectInfo(upstream(h2cPort, { http2: true }), '2.0');
  });

  it('h2 over TLS with http2 (and grpcs)', async () => {
    await expectInfo(upstream(h2Port, { scheme: 'https', http2: true }), '2.0');
    await expectInfo(upstream(h2Port, { scheme: 'grpcs' }), '2.0');
  });

  it('a closed port is a retryable connect failure, reported to the balancer', async () => {
    const port = await freePort();
    const u = upstream(port, { type: 'least_conn' });
    const r = await call(u, '/info', { method: 'POST', body: Buffer.from('x') });
    expect(r).toMatchObject({ ok: false, kind: 'connect', retryable: true });
  });

  it('a silent upstream is a read timeout', async () => {
    const r = await call(upstream(h1Port), '/slow', {}, { ...opts, readTimeoutMs: 300 });
    expect(r).toMatchObject({ ok: false, kind: 'timeout', retryable: true });
    const post = await call(upstream(h1Port), '/slow', { method: 'POST', body: Buffer.from('x') }, { ...opts, readTimeoutMs: 300 });
    expect(post).toMatchObject({ ok: false, kind: 'timeout', retryable: false });
  });

  it.each([
    ['http/1.1', () => h1Port, {}],
    ['h2c', () => h2cPort, { http2: true }],
  ] as const)('streams a 10 MB body both ways without buffering (%s)', async (_name, port, conf) => {
    const total = 10 * 1024 * 1024;
    const chunk = 64 * 1024;
    let produced = 0;
    const sent = createHash('sha256');
    const body = new Readable({
      highWaterMark: chunk,
      read() {
        if (produced >= total) {
          this.push(null);
          return;
        }
        const b = Buffer.alloc(chunk, produced / chunk);
        produced += chunk;
        sent.update(b);
        this.push(b);
      },
    });
    const r = await call(upstream(port(), conf as JsonObject), '/echo', { method: 'POST', body, headers: { host: 'app.test', 'content-length': String(total) } });
    if (!r.ok) throw new Error(r.message);
    // Response headers arrive while the request body is still being produced: nothing waits for the whole body.
    expect(produced).toBeLessThan(total);
    const got = createHash('sha256');
    let received = 0;
    let producedAtFirstByte = -1;
    for await (const c of r.body) {
      if (producedAtFirstByte < 0) producedAtFirstByte = produced;
      received += (c as Buffer).length;
      got.update(c as Buffer);
    }
    expect(producedAtFirstByte).toBeLessThan(total);
    expect(received).toBe(total);
    expect(got.digest('hex')).toBe(sent.digest('hex'));
  });

  it('a request body streamed before a failure is not retryable', async () => {
    let n = 0;
    const body = new Readable({
      read() {
        if (n++ < 3) this.push(Buffer.alloc(1024));
      },
    });
    const r = await call(upstream(h1Port), '/slow', { method: 'PUT', body, headers: { host: 'app.test' } }, { ...opts, sendTimeoutMs: 300 });
    expect(r).toMatchObject({ ok: false, kind: 'timeout', retryable: false });
    // the client stream stays with the caller (it may still answer the client with a 5xx)
    expect(body.destroyed).toBe(false);
  });

  it('a client that never sends its body hits the send timeout', async () => {
    const body = new PassThrough();
    const r = await call(upstream(h1Port), '/echo', { method: 'POST', body, headers: { host: 'app.test' } }, { ...opts, sendTimeoutMs: 200 });
    expect(r).toMatchObject({ ok: false, kind: 'timeout' });
    body.destroy();
  });

  it('reports begin at dispatch and end when the response body closes', async () => {
    const u = new UpstreamRuntime({
      key: 'lc',
      registry,
      conf: { type: 'least_conn', nodes: [{ host: '127.0.0.1', port: h1Port, weight: 1 }, { host: '127.0.0.1', port: h1bPort, weight: 1 }] },
    });
    const [a, b] = u.endpoints;
    const body = new PassThrough();
    body.write('hi'); // undici sends the request head together with the first body chunk
    const r = await dispatch(pools.get(u, a!), { method: 'POST', path: '/echo', headers: { host: 'x' }, body }, opts);
    if (!r.ok) throw new Error(r.message);
    const ctx = { vars: { get: () => undefined }, tried: null };
    for (let i = 0; i < 4; i++) expect(u.pick(ctx)).toEqual({ ok: true, endpoint: b });
    body.end('bye');
    expect((await readAll(r.body)).toString()).toBe('hibye');
    await new Promise((res) => setImmediate(res));
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const p = u.pick(ctx);
      if (p.ok) seen.add(p.endpoint.key);
    }
    expect(seen.size).toBe(2);
  });

  it('an aborted signal ends the attempt', async () => {
    const ac = new AbortController();
    const u = upstream(h1Port);
    const p = dispatch(pools.get(u, u.endpoints[0]!), { method: 'GET', path: '/slow', headers: { host: 'x' }, body: null }, opts, ac.signal);
    setTimeout(() => ac.abort(), 50);
    expect(await p).toMatchObject({ ok: false, retryable: false });
  });
});
