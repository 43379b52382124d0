// HTTPS listener end to end with real TLS clients (openssl s_client, curl, node https): certificates chosen by
// SNI from ssl objects made through the Admin API (exact, then wildcard), apisix.ssl.fallback_sni for clients
// without SNI, a certificate replaced while a keep-alive connection stays open, h2 by ALPN.
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { exec, makePki, servedCert, type Pem, type Pki } from './pki.ts';

let tmp: { dir: string; cleanup(): Promise<void> };
let pki: Pki;
let certA: Pem;
let certA2: Pem;
let certW: Pem;
let upA: EchoServer;
let upW: EchoServer;
/** fallback_sni: a.test, on its own HTTPS port. */
let gw: TestGateway;
let port = 0;
/** No fallback_sni (the helper's default HTTPS listener). */
let plain: TestGateway;

beforeAll(async () => {
  tmp = await tempDir('swy-https-');
  pki = makePki(tmp.dir);
  certA = pki.server('a', 'a.test', ['a.test'], '0A01');
  certA2 = pki.server('a2', 'a.test replaced', ['a.test'], '0A02');
  certW = pki.server('w', 'wildcard.w.test', ['*.w.test'], '0B01');
  [upA, upW] = await Promise.all([startEcho('A'), startEcho('W')]);
  port = await freePort();
  [gw, plain] = await Promise.all([
    startTestGateway({ config: { apisix: { ssl: { listen: [{ ip: '127.0.0.1', port }], fallback_sni: 'a.test' } } } }),
    startTestGateway(),
  ]);
  for (const g of [gw, plain]) {
    await g.put('/ssls/a', { cert: certA.cert, key: certA.key, snis: ['a.test'] });
    await g.put('/ssls/w', { cert: certW.cert, key: certW.key, snis: ['*.w.test'] });
    await g.put('/routes/a', { uri: '/*', hosts: ['a.test'], upstream: { nodes: { [upA.addr]: 1 } } });
    await g.put('/routes/w', { uri: '/*', hosts: ['*.w.test'], upstream: { nodes: { [upW.addr]: 1 } } });
  }
});

afterAll(async () => {
  await Promise.all([gw?.close(), plain?.close(), upA?.close(), upW?.close()]);
  await tmp?.cleanup();
});

/** curl against `name` resolved to the gateway, verifying the certificate against the test CA. */
async function curlTo(name: string, p: string, extra: string[] = [], at = port): Promise<{ code: number; body: string; stderr: string }> {
  const r = await exec('curl', ['-sS', '--max-time', '10', '--cacert', pki.caFile, '--resolve', `${name}:${at}:127.0.0.1`, ...extra, `https://${name}:${at}${p}`]);
  return { code: r.code, body: r.stdout, stderr: r.stderr };
}

describe('certificates by SNI', () => {
  test('exact and wildcard SNI each get their certificate (openssl s_client)', async () => {
    const a = await servedCert(port, 'a.test');
    expect(a.ok, a.output).toBe(true);
    expect(a.subject).toBe('CN=a.test');
    expect(a.serial).toBe(certA.serial);
    for (const name of ['x.w.test', 'Other.W.test']) {
      const w = await servedCert(port, name);
      expect(w.ok, w.output).toBe(true);
      expect(w.subject).toBe('CN=wildcard.w.test');
      expect(w.serial).toBe(certW.serial);
    }
  });

  test('each SNI is routed to its route; curl verifies the chain against the test CA', async () => {
    const a = await curlTo('a.test', '/hello');
    expect(a.code, a.stderr).toBe(0);
    const ra = JSON.parse(a.body);
    expect(ra.server).toBe('A');
    expect(ra.headers['x-forwarded-proto']).toBe('https');
    const w = await curlTo('x.w.test', '/there');
    expect(w.code, w.stderr).toBe(0);
    expect(JSON.parse(w.body).server).toBe('W');
  });

  test('an unknown SNI fails the handshake, also with fallback_sni set (APISIX applies it only without SNI)', async () => {
    for (const [g, at] of [[gw, port], [plain, plain.httpsPort]] as const) {
      const r = await servedCert(at, 'unknown.test');
      expect(r.ok, `${g === gw ? 'fallback' : 'plain'}: ${r.output}`).toBe(false);
      // One label deeper than the wildcard covers.
      expect((await servedCert(at, 'a.b.w.test')).ok).toBe(false);
    }
    const c = await curlTo('unknown.test', '/', ['-k']);
    expect(c.code).not.toBe(0);
  });

  test('a client without SNI gets the fallback_sni certificate; without fallback_sni the handshake fails', async () => {
    const r = await servedCert(port, null);
    expect(r.ok, r.output).toBe(true);
    expect(r.serial).toBe(certA.serial);
    const none = await servedCert(plain.httpsPort, null);
    expect(none.ok).toBe(false);
    // By IP (curl sends no SNI for an address): the fallback certificate, routed by Host.
    const ip = await exec('curl', ['-sS', '-k', '--max-time', '10', '-H', 'Host: a.test', `https://127.0.0.1:${port}/ip`]);
    expect(ip.code, ip.stderr).toBe(0);
    expect(JSON.parse(ip.stdout).server).toBe('A');
  });

  test('curl --http2 negotiates h2 over TLS', async () => {
    const r = await curlTo('a.test', '/h2', ['--http2', '-k', '-o', '/dev/null', '-w', '%{http_version}']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.body).toBe('2');
    const seen = upA.seen.filter((s) => s.url === '/h2');
    expect(seen.length).toBe(1);
    const h1 = await curlTo('a.test', '/h1', ['--http1.1', '-o', '/dev/null', '-w', '%{http_version}']);
    expect(h1.body).toBe('1.1');
  });
});

describe('certificate replacement', () => {
  test('the next handshake gets the new certificate; an open keep-alive connection keeps working', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: pki.ca });
    const get = (p: string) =>
      new Promise<{ status: number; body: string; socket: TLSSocket; reused: boolean }>((resolve, reject) => {
        const req = https.get({ host: '127.0.0.1', port, path: p, servername: 'a.test', headers: { host: 'a.test' }, agent }, (res) => {
          const socket = res.socket as TLSSocket;
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, socket, reused: req.reusedSocket }));
        });
        req.on('error', reject);
      });
    try {
      const first = await get('/before');
      expect(first.status).toBe(200);
      expect(first.socket.getPeerCertificate().serialNumber).toBe(certA.serial);

      await gw.put('/ssls/a', { cert: certA2.cert, key: certA2.key, snis: ['a.test'] });
      // The very first handshake after the change, here from a client without SNI, follows the replaced
      // fallback certificate.
      expect((await servedCert(port, null)).serial).toBe(certA2.serial);
      const fresh = await servedCert(port, 'a.test');
      expect(fresh.serial).toBe(certA2.serial);
      expect(fresh.subject).toBe('CN=a.test replaced');

      const after = await get('/after');
      expect(after.status).toBe(200);
      expect(after.reused).toBe(true);
      expect(after.socket).toBe(first.socket);
      expect(after.socket.getPeerCertificate().serialNumber).toBe(certA.serial);
      expect(JSON.parse(after.body).url).toBe('/after');
    } finally {
      agent.destroy();
      await gw.put('/ssls/a', { cert: certA.cert, key: certA.key, snis: ['a.test'] });
    }
  });
});
