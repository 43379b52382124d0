// Client certificates on the TLS stream listener: an ssl object with `client.ca` is enforced on stream routes as
// APISIX does on its stream subsystem, in the handshake (a stream has no error answer of its own). A client
// certificate issued by client.ca within client.depth is proxied; none, one from another CA, or a chain with more
// intermediates than client.depth closes the connection before any upstream connect, with the reason logged. An ssl
// object without client.ca asks for no certificate. openssl s_client (an independent TLS stack) and node's TLS
// client are the clients; the upstream answers "<name>:" + the first chunk and counts its connections.
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildSnapshot } from '../../src/config/snapshot.ts';
import { createStreamListeners, type StreamListeners } from '../../protocols/stream/index.ts';
import { StreamRuntimeBuilder } from '../../stream-routes/runtime.ts';
import type { StreamRuntime } from '../../stream-routes/types.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { buildCertificateStore } from '../../src/tls/store.ts';
import { item, registries } from '../helpers/items.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { clientCerts, exec, makePki, type Pem, type Pki } from '../https/pki.ts';

interface Upstream {
  readonly server: net.Server;
  readonly addr: string;
  connections: number;
}

/** Answers the first chunk with `${name}:` + the chunk, then ends (s_client -quiet exits on the close). */
async function startUpstream(name: string): Promise<Upstream> {
  const up = { connections: 0 } as { server: net.Server; addr: string; connections: number };
  up.server = net.createServer((s) => {
    up.connections++;
    s.once('data', (d: Buffer) => s.end(`${name}:${d.toString()}`));
    s.on('error', () => s.destroy());
  });
  await new Promise<void>((resolve) => up.server.listen(0, '127.0.0.1', resolve));
  up.addr = `127.0.0.1:${(up.server.address() as net.AddressInfo).port}`;
  return up;
}

let tmp: { dir: string; cleanup(): Promise<void> };
let pki: Pki;
let client: Pem;
let foreign: Pem;
/** Client certificates one and two intermediate CAs below the client CA (certFile holds the chain). */
let viaOne: Pem;
let viaTwo: Pem;
let main: Upstream;
/** Where traffic-split sends sessions whose verified client serial is the valid client's. */
let verified: Upstream;
let gw: TestGateway;
let port = 0;

beforeAll(async () => {
  tmp = await tempDir('swy-stream-mtls-');
  pki = makePki(tmp.dir);
  const srv = pki.server('srv', 'mtls.test', ['mtls.test', 'd0.test', 'd2.test', 'open.test'], '6A01');
  ({ client, foreign, viaOne, viaTwo } = clientCerts(pki));
  [main, verified] = await Promise.all([startUpstream('up'), startUpstream('verified')]);
  port = await freePort();
  gw = await startTestGateway({
    config: { apisix: { proxy_mode: 'http&stream', stream_proxy: { tcp: [{ addr: `127.0.0.1:${port}`, tls: true }] } } },
  });
  // mtls.test: client.depth defaults to 1 (one intermediate); d0.test allows none, d2.test two.
  await gw.put('/ssls/mtls', { cert: srv.cert, key: srv.key, snis: ['mtls.test'], client: { ca: pki.clientCa } });
  await gw.put('/ssls/d0', { cert: srv.cert, key: srv.key, snis: ['d0.test'], client: { ca: pki.clientCa, depth: 0 } });
  await gw.put('/ssls/d2', { cert: srv.cert, key: srv.key, snis: ['d2.test'], client: { ca: pki.clientCa, depth: 2 } });
  await gw.put('/ssls/open', { cert: srv.cert, key: srv.key, snis: ['open.test'] });
  await gw.put('/stream_routes/s', {
    server_port: port,
    plugins: {
      'traffic-split': {
        rules: [{ match: [{ vars: [['ssl_client_serial', '==', client.serial]] }], weighted_upstreams: [{ upstream: { nodes: { [verified.addr]: 1 } }, weight: 1 }] }],
      },
    },
    upstream: { nodes: { [main.addr]: 1 } },
  });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await Promise.all([main, verified].map((u) => new Promise((resolve) => u?.server.close(resolve))));
  await tmp?.cleanup();
});

/** openssl s_client sends `msg` and prints what comes back until the connection closes. */
async function sClient(sni: string, cert: Pem | null, msg: string): Promise<{ answer: string; stderr: string }> {
  const args = ['s_client', '-quiet', '-connect', `127.0.0.1:${port}`, '-servername', sni, '-CAfile', pki.caFile, '-verify_return_error'];
  if (cert !== null) {
    // -cert sends the file's first certificate only: the intermediates after it go in as -cert_chain.
    args.push('-cert', cert.certFile, '-key', cert.keyFile);
    const intermediates = readFileSync(cert.certFile, 'utf8').slice(cert.cert.length);
    if (intermediates.includes('BEGIN CERTIFICATE')) {
      const chainFile = `${cert.certFile}.intermediates`;
      writeFileSync(chainFile, intermediates);
      args.push('-cert_chain', chainFile);
    }
  }
  const r = await exec('openssl', args, msg);
  return { answer: r.stdout, stderr: r.stderr };
}

/** Node's TLS client: the bytes read until the connection closes, and the error it saw, if any. */
function nodeClient(sni: string, cert: Pem | null, msg: string, p = port): Promise<{ answer: string; error: string }> {
  return new Promise((resolve) => {
    let answer = '';
    let error = '';
    const opts: tls.ConnectionOptions = { host: '127.0.0.1', port: p, servername: sni, ca: pki.ca };
    // certFile: the certificate followed by its intermediates, as a client sends them.
    if (cert !== null) Object.assign(opts, { cert: readFileSync(cert.certFile, 'utf8'), key: cert.key });
    const s = tls.connect(opts, () => s.write(msg));
    s.on('data', (d: Buffer) => (answer += d.toString()));
    s.on('error', (err) => (error = err.message));
    s.setTimeout(10_000, () => s.destroy(new Error('timed out')));
    s.on('close', () => resolve({ answer, error }));
  });
}

describe('TLS stream listener: client.ca', () => {
  test('openssl s_client with a certificate issued by client.ca is proxied; its serial reaches stream plugins', async () => {
    const before = verified.connections;
    const r = await sClient('mtls.test', client, 'hello');
    expect(r.answer, r.stderr).toBe('verified:hello');
    expect(verified.connections).toBe(before + 1);
  });

  test('without a client certificate the handshake fails and the upstream sees no connection', async () => {
    const before = main.connections + verified.connections;
    const viaOpenssl = await sClient('mtls.test', null, 'none');
    expect(viaOpenssl.answer).toBe('');
    // OpenSSL's alert for FAIL_IF_NO_PEER_CERT (TLS 1.3: certificate required).
    expect(viaOpenssl.stderr).toMatch(/alert/i);
    const viaNode = await nodeClient('mtls.test', null, 'none');
    expect(viaNode.answer).toBe('');
    expect(viaNode.error).not.toBe('');
    expect(main.connections + verified.connections).toBe(before);
  });

  test('a certificate from another CA is refused before any upstream connect', async () => {
    const before = main.connections + verified.connections;
    expect((await sClient('mtls.test', foreign, 'foreign')).answer).toBe('');
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      const r = await new Promise<{ answer: string }>((resolve) => {
        let answer = '';
        const s = tls.connect({ host: '127.0.0.1', port, servername: 'mtls.test', ca: pki.ca, cert: foreign.cert, key: foreign.key, minVersion: version, maxVersion: version }, () => s.write('x'));
        s.on('data', (d: Buffer) => (answer += d.toString()));
        s.on('error', () => undefined);
        s.on('close', () => resolve({ answer }));
      });
      expect(r.answer, version).toBe('');
    }
    expect(main.connections + verified.connections).toBe(before);
  });

  test('client.depth bounds the intermediate CAs between the client certificate and client.ca', async () => {
    const cases: [string, Pem, boolean][] = [
      ['d0.test', client, true],
      ['d0.test', viaOne, false],
      ['mtls.test', viaOne, true],
      ['mtls.test', viaTwo, false],
      ['d2.test', viaTwo, true],
    ];
    for (const [sni, cert, passes] of cases) {
      const before = main.connections + verified.connections;
      const r = await sClient(sni, cert, 'depth');
      const label = `${sni} ${cert.serial}: ${r.stderr}`;
      if (passes) expect(r.answer, label).toMatch(/^(up|verified):depth$/);
      else expect(r.answer, label).toBe('');
      expect(main.connections + verified.connections, label).toBe(before + (passes ? 1 : 0));
    }
    // The intermediates' clients are not the traffic-split client: their sessions take the route's upstream.
    expect((await nodeClient('d2.test', viaTwo, 'two')).answer).toBe('up:two');
  });

  test('a client resuming its session (TLS 1.2 session id, TLS 1.3 ticket) is proxied again', async () => {
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      let session: Buffer | undefined;
      for (const round of [1, 2]) {
        const r = await new Promise<{ answer: string; reused: boolean; error: string }>((resolve) => {
          let answer = '';
          let error = '';
          // Read once connected: node answers null after the close.
          let reused = false;
          const s = tls.connect(
            { host: '127.0.0.1', port, servername: 'mtls.test', ca: pki.ca, cert: client.cert, key: client.key, session, minVersion: version, maxVersion: version },
            () => {
              reused = s.isSessionReused();
              s.write(`${version}#${round}`);
            },
          );
          s.on('session', (t: Buffer) => (session = t));
          s.on('data', (d: Buffer) => (answer += d.toString()));
          s.on('error', (err) => (error = err.message));
          s.on('close', () => resolve({ answer, reused, error }));
        });
        expect(r, `${version} round ${round}`).toEqual({ answer: `verified:${version}#${round}`, reused: round === 2, error: '' });
      }
    }
  });

  test('an ssl object without client.ca asks for no certificate', async () => {
    const r = await nodeClient('open.test', null, 'open');
    expect(r).toEqual({ answer: 'up:open', error: '' });
    expect((await sClient('open.test', null, 'open-ssl')).answer).toBe('up:open-ssl');
  });
});

describe('TLS stream listener: refusals are logged', () => {
  let listeners: StreamListeners;
  let builder: StreamRuntimeBuilder;
  let logPort = 0;
  const lines: Record<string, unknown>[] = [];

  beforeAll(async () => {
    const { plugins, balancers } = registries();
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line));
        done();
      },
    });
    const logger = pino({ level: 'info' }, sink);
    builder = new StreamRuntimeBuilder({ plugins, balancers, logger });
    const srv = pki.server('log-srv', 'log.test', ['log.test'], '6A02');
    const snap = buildSnapshot(
      [
        item('ssls', 'log', { cert: srv.cert, key: srv.key, snis: ['log.test'], client: { ca: pki.clientCa, depth: 0 } }),
        item('stream_routes', 'r', { upstream: { nodes: { [main.addr]: 1 }, type: 'roundrobin' } }),
      ],
      1,
      { plugins },
    );
    expect(snap.errors).toEqual([]);
    const runtime: StreamRuntime = builder.build(snap, null);
    const certificates = buildCertificateStore(snap, null, logger);
    logPort = await freePort();
    listeners = createStreamListeners({ tcp: [{ addr: `127.0.0.1:${logPort}`, tls: true }], udp: [], getRuntime: () => runtime, certificates: () => certificates, logger, timeouts: { drainMs: 200 } });
    await listeners.listen();
  });

  afterAll(async () => {
    await listeners?.close({ graceful: false });
    builder?.close();
  });

  test('each refusal names its reason', async () => {
    const before = main.connections;
    await nodeClient('log.test', null, 'a', logPort);
    await nodeClient('log.test', foreign, 'b', logPort);
    await nodeClient('log.test', viaOne, 'c', logPort);
    const reasons = (): string[] => lines.filter((l) => l.msg === 'stream connection closed').map((l) => String(l.reason));
    await waitFor(() => reasons().length >= 3);
    const [none, other, deep] = reasons();
    expect(none).toMatch(/^TLS handshake failed: .*certificate/i);
    expect(other).toMatch(/^client certificate verify failed: /);
    expect(other).not.toMatch(/client\.depth/);
    expect(deep).toMatch(/chain deeper than client\.depth/);
    expect(lines.find((l) => l.msg === 'stream connection closed')?.ssl).toBe('log');
    expect(main.connections).toBe(before);
    // A valid certificate on the same listener is proxied.
    expect((await nodeClient('log.test', client, 'ok', logPort)).answer).toBe('up:ok');
  });
});
