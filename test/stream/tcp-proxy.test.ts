// TCP stream proxy end to end: redis-server via ioredis, TLS termination with per-SNI certificates (openssl CA),
// SNI passthrough, `scheme: tls` upstreams, PROXY protocol, dead-node retry, and stream ip-restriction /
// limit-conn rejections.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/ports.ts';
import { startPeer, tempDir, waitFor, type Peer } from '../helpers/proc.ts';
import { parseProxyHeader } from '../../protocols/stream/proxy-protocol.ts';
import { item, startProxy, type TestProxy } from './fixtures.ts';

interface Pem {
  cert: string;
  key: string;
}

let tmp: { dir: string; cleanup(): Promise<void> };
let ca = '';
const certs: Record<string, Pem> = {};
let redis: Peer;
let redisPort = 0;
let proxy: TestProxy;
const servers: net.Server[] = [];
const ports: Record<string, number> = {};
/** First bytes each recording upstream received per connection. */
const recorded: Buffer[] = [];

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: tmp.dir, stdio: 'pipe' });
}

function makeCert(name: string, sans: string[]): Pem {
  const f = (ext: string) => path.join(tmp.dir, `${name.replace(/\W/g, '_')}.${ext}`);
  writeFileSync(f('ext'), `subjectAltName=${sans.map((s) => `DNS:${s}`).join(',')}\n`);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('key'), '-out', f('csr'), '-subj', `/CN=${name}`]);
  openssl(['x509', '-req', '-in', f('csr'), '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', f('crt'), '-extfile', f('ext')]);
  return { cert: readFileSync(f('crt'), 'utf8'), key: readFileSync(f('key'), 'utf8') };
}

async function listen(server: net.Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as net.AddressInfo).port;
}

/** Echo server prefixing replies with a tag, so tests can tell upstreams apart. */
function tagged(tag: string): net.Server {
  return net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', (d) => s.write(`${tag}:${d.toString()}`));
    s.on('end', () => s.end());
    s.on('error', () => undefined);
  });
}

/** Connects, writes, and collects the reply until `until` bytes arrived or the connection closed. */
function exchange(sock: net.Socket, payload: string | Buffer, until: number): Promise<{ data: string; closed: boolean }> {
  return new Promise((resolve) => {
    let data = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ data, closed });
    };
    const timer = setTimeout(() => finish(false), 5000);
    sock.on('data', (d) => {
      data += d.toString();
      if (data.length >= until) finish(false);
    });
    sock.on('close', () => finish(true));
    sock.on('error', () => undefined);
    sock.write(payload);
  });
}

function plain(port: number): net.Socket {
  return net.connect(port, '127.0.0.1');
}

function tlsClient(port: number, servername: string): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', servername, ca, rejectUnauthorized: true });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

beforeAll(async () => {
  tmp = await tempDir('swy-stream-tls-');
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=Switchyard Test CA']);
  ca = readFileSync(path.join(tmp.dir, 'ca.crt'), 'utf8');
  certs.a = makeCert('a.test.local', ['a.test.local']);
  certs.b = makeCert('b.test.local', ['b.test.local']);
  certs.wild = makeCert('wild.local', ['*.wild.local']);
  certs.pass = makeCert('pass.test.local', ['pass.test.local']);

  redisPort = await freePort();
  redis = startPeer('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect(redisPort, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }),
  );

  const upA = await listen(tagged('A'));
  const upB = await listen(tagged('B'));
  // A TLS upstream that answers with the SNI it was given (passthrough and scheme: tls).
  const tlsUp = await listen(
    tls.createServer({ cert: certs.pass.cert + certs.wild.cert, key: certs.pass.key, SNICallback: (name, cb) => cb(null, tls.createSecureContext(name.endsWith('.wild.local') ? certs.wild : certs.pass)) }, (s) => {
      s.on('data', (d) => s.write(`tls(${s.servername || '-'}):${d.toString()}`));
      s.on('error', () => undefined);
    }),
  );
  const recorder = await listen(
    net.createServer((s) => {
      const chunks: Buffer[] = [];
      s.on('data', (d) => {
        chunks.push(d);
        const all = Buffer.concat(chunks);
        if (all.includes('hello')) {
          recorded.push(all);
          s.end('recorded');
        }
      });
      s.on('error', () => undefined);
    }),
  );
  const dead = await freePort();

  for (const name of ['redis', 'tls', 'pass', 'dead', 'limit', 'deny', 'allow', 'pp', 'tlsup']) ports[name] = await freePort();
  const node = (p: number) => ({ [`127.0.0.1:${p}`]: 1 });
  proxy = await startProxy({
    items: [
      item('ssls', 'a', { sni: 'a.test.local', ...certs.a }),
      item('ssls', 'b', { snis: ['b.test.local'], ...certs.b }),
      item('ssls', 'w', { sni: '*.wild.local', ...certs.wild }),
      item('services', 'svc-a', { upstream: { nodes: node(upA) } }),
      item('stream_routes', 'redis', { server_port: ports.redis, upstream: { nodes: node(redisPort) } }),
      item('stream_routes', 'tls-a', { sni: 'a.test.local', service_id: 'svc-a' }),
      item('stream_routes', 'tls-b', { sni: 'b.test.local', upstream: { nodes: node(upB) } }),
      item('stream_routes', 'tls-wild', { sni: '*.wild.local', upstream: { scheme: 'tls', nodes: node(tlsUp) } }),
      item('stream_routes', 'pass', { server_port: ports.pass, sni: 'pass.test.local', upstream: { nodes: node(tlsUp) } }),
      item('stream_routes', 'pass-plain', { server_port: ports.pass, upstream: { nodes: node(upB) } }),
      item('stream_routes', 'tlsup', { server_port: ports.tlsup, upstream: { scheme: 'tls', nodes: node(tlsUp) } }),
      item('stream_routes', 'dead', { server_port: ports.dead, upstream: { nodes: { [`127.0.0.1:${dead}`]: 1, [`127.0.0.1:${upA}`]: 1 } } }),
      item('stream_routes', 'limit', {
        server_port: ports.limit,
        plugins: { 'limit-conn': { conn: 1, burst: 0, default_conn_delay: 0.1, key: 'remote_addr' } },
        upstream: { nodes: node(upA) },
      }),
      item('stream_routes', 'deny', { server_port: ports.deny, plugins: { 'ip-restriction': { blacklist: ['127.0.0.0/8'] } }, upstream: { nodes: node(upA) } }),
      item('stream_routes', 'allow', { server_port: ports.allow, plugins: { 'ip-restriction': { whitelist: ['127.0.0.1'] } }, upstream: { nodes: node(upA) } }),
      item('stream_routes', 'pp', { server_port: ports.pp, remote_addr: '203.0.113.0/24', upstream: { nodes: node(recorder) } }),
    ],
    tcp: [
      { addr: `127.0.0.1:${ports.redis}`, tls: false },
      { addr: `127.0.0.1:${ports.tls}`, tls: true },
      { addr: `127.0.0.1:${ports.pass}`, tls: false },
      { addr: `127.0.0.1:${ports.tlsup}`, tls: false },
      { addr: `127.0.0.1:${ports.dead}`, tls: false },
      { addr: `127.0.0.1:${ports.limit}`, tls: false },
      { addr: `127.0.0.1:${ports.deny}`, tls: false },
      { addr: `127.0.0.1:${ports.allow}`, tls: false },
      { addr: `127.0.0.1:${ports.pp}`, tls: false, proxyProtocol: true, proxyProtocolToUpstream: 'v2' },
    ],
  });
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  for (const s of servers) s.close();
  await redis?.stop();
  await tmp?.cleanup();
});

describe('TCP stream proxy', () => {
  it('proxies redis-server for ioredis: commands, pipelines, large values', async () => {
    const client = new Redis({ host: '127.0.0.1', port: ports.redis, lazyConnect: true, maxRetriesPerRequest: 1 });
    await client.connect();
    try {
      expect(await client.set('k', 'v')).toBe('OK');
      expect(await client.get('k')).toBe('v');
      const p = client.pipeline();
      for (let i = 0; i < 500; i++) p.incr('counter');
      const res = await p.exec();
      expect(res?.at(-1)?.[1]).toBe(500);
      const big = 'x'.repeat(2 * 1024 * 1024);
      await client.set('big', big);
      expect((await client.get('big'))?.length).toBe(big.length);
    } finally {
      client.disconnect();
    }
  });

  it('terminates TLS with the certificate chosen by SNI and routes each SNI to its upstream', async () => {
    const a = await tlsClient(ports.tls, 'a.test.local');
    expect(a.getPeerCertificate().subject.CN).toBe('a.test.local');
    expect((await exchange(a, 'ping', 6)).data).toBe('A:ping');
    a.destroy();
    const b = await tlsClient(ports.tls, 'B.test.local');
    expect(b.getPeerCertificate().subject.CN).toBe('b.test.local');
    expect((await exchange(b, 'pong', 6)).data).toBe('B:pong');
    b.destroy();
  });

  it('passes the client SNI on to a `scheme: tls` upstream (wildcard certificate and route)', async () => {
    const c = await tlsClient(ports.tls, 'x.wild.local');
    expect((await exchange(c, 'hi', 'tls(x.wild.local):hi'.length)).data).toBe('tls(x.wild.local):hi');
    c.destroy();
  });

  it('sends apisix_backend as SNI to a `scheme: tls` IP node when the client sent none', async () => {
    const r = await exchange(plain(ports.tlsup), 'q', 'tls(apisix_backend):q'.length);
    expect(r.data).toBe('tls(apisix_backend):q');
  });

  it('fails the handshake for an SNI without a certificate', async () => {
    await expect(tlsClient(ports.tls, 'nobody.test.local')).rejects.toThrow();
  });

  it('routes TLS passthrough by the peeked ClientHello SNI; plain traffic on the same port still works', async () => {
    const s = await tlsClient(ports.pass, 'pass.test.local');
    expect(s.getPeerCertificate().subject.CN).toBe('pass.test.local');
    expect((await exchange(s, 'through', 'tls(pass.test.local):through'.length)).data).toBe('tls(pass.test.local):through');
    s.destroy();
    const p = plain(ports.pass);
    expect((await exchange(p, 'text', 6)).data).toBe('B:text');
    p.destroy();
  });

  it('skips a dead node at connect time and re-picks another', async () => {
    for (let i = 0; i < 6; i++) {
      const s = plain(ports.dead);
      expect((await exchange(s, `n${i}`, 4)).data).toBe(`A:n${i}`);
      s.destroy();
    }
  });

  it('limit-conn closes sessions above conn + burst and releases the slot when a session ends', async () => {
    const first = plain(ports.limit);
    expect((await exchange(first, 'one', 5)).data).toBe('A:one');
    const second = await exchange(plain(ports.limit), 'two', 5);
    expect(second).toEqual({ data: '', closed: true });
    first.destroy();
    await waitFor(async () => {
      const s = plain(ports.limit);
      const r = await exchange(s, 'again', 7);
      s.destroy();
      return r.data === 'A:again';
    }, 5000, 50);
  });

  it('ip-restriction closes blacklisted clients and lets whitelisted ones through', async () => {
    expect(await exchange(plain(ports.deny), 'x', 3)).toEqual({ data: '', closed: true });
    const ok = plain(ports.allow);
    expect((await exchange(ok, 'y', 3)).data).toBe('A:y');
    ok.destroy();
  });

  it('reads a PROXY v1 header (its source is remote_addr) and sends a v2 header upstream', async () => {
    const s = plain(ports.pp);
    const r = await exchange(s, 'PROXY TCP4 203.0.113.9 127.0.0.1 5555 9999\r\nhello', 'recorded'.length);
    expect(r.data).toBe('recorded');
    const got = recorded.at(-1)!;
    const pp = parseProxyHeader(got);
    expect(pp.kind).toBe('ok');
    if (pp.kind !== 'ok') return;
    expect(pp.source).toEqual({ addr: '203.0.113.9', port: 5555 });
    expect(pp.dest?.port).toBe(ports.pp);
    expect(got.subarray(pp.length).toString()).toBe('hello');
    // Without the header (or from an address no route allows) the connection is closed.
    expect((await exchange(plain(ports.pp), 'hello', 1)).closed).toBe(true);
  });
});
