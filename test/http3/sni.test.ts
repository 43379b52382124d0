// HTTP/3 certificates chosen by SNI from the shared certificate store (protocols/http3/quic-fixes.ts fix 3,
// initial.ts): real clients send their ClientHello in Initial packets, the gateway reads the SNI before quiche
// accepts the connection and hands that connection the SNI's certificate. Which certificate the client got is
// read on the client side: gtlsclient dumps the server's Handshake CRYPTO data (the Certificate message in
// clear), and Chromium accepts only certificates whose SPKI it was given. gtlsclient (ngtcp2 0.12) sends its
// <HOST> argument as SNI ('localhost' for an IP address) and ignores --sni, so its names come from /etc/hosts
// ('vm', 'runsc'); the wildcard name is Chromium's, with every host mapped to 127.0.0.1.
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTP3_CONNECTION, type Http3ConnectionMessage } from '../../protocols/http3/listener.ts';
import { CHROMIUM, certDer, chromiumDump, gtls, handshakeCrypto, makeCert, startH3Gateway, type H3Gateway, type TestCert } from './h3-helpers.ts';

let local: TestCert;
let vm: TestCert;
let wild: TestCert;
let gw: H3Gateway;
let upstream: http.Server;

const PAGE = (route: string, sni: string): string => `<!doctype html><html><body><p id="r">route=${route} sni=${sni}</p><p id="proto"></p><script>
document.getElementById('proto').textContent = 'proto=' + performance.getEntriesByType('navigation')[0].nextHopProtocol;
</script></body></html>`;

beforeAll(async () => {
  [local, vm, wild] = await Promise.all([makeCert('localhost'), makeCert('vm'), makeCert('*.wild.test')]);
  upstream = http.createServer((req, res) => {
    const route = String(req.headers['x-route']);
    const sni = String(req.headers['x-sni'] ?? '');
    if (req.url!.startsWith('/page')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(PAGE(route, sni));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ route, sni, host: req.headers.host }));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const nodes = { [`127.0.0.1:${(upstream.address() as AddressInfo).port}`]: 1 };
  // ssl 1 (localhost, fallback_sni) comes from startH3Gateway.
  gw = await startH3Gateway(local);
  await gw.t.put('/ssls/2', { cert: vm.cert, key: vm.key, snis: ['vm'] });
  await gw.t.put('/ssls/3', { cert: wild.cert, key: wild.key, snis: ['*.wild.test'] });
  const rewrite = (route: string) => ({ 'proxy-rewrite': { headers: { set: { 'x-route': route, 'x-sni': '$ssl_server_name' } } } });
  await gw.t.put('/routes/vm', { uri: '/*', hosts: ['vm'], plugins: rewrite('vm'), upstream: { type: 'roundrobin', nodes } });
  await gw.t.put('/routes/wild', { uri: '/*', hosts: ['*.wild.test'], plugins: rewrite('wild'), upstream: { type: 'roundrobin', nodes } });
  await gw.t.put('/routes/any', { uri: '/*', plugins: rewrite('any'), upstream: { type: 'roundrobin', nodes } });
}, 30_000);

afterAll(async () => {
  await gw?.t.close();
  await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
  await Promise.all([local, vm, wild].map((c) => c?.cleanup()));
});

describe('HTTP/3 certificate by SNI (gtlsclient)', () => {
  it('an exact SNI gets its own certificate, $ssl_server_name and its route', async () => {
    const r = await gtls(gw.port, [`https://vm:${gw.port}/json`], { host: 'vm', quicDump: true });
    expect(r.code, r.stderr.slice(-1500)).toBe(0);
    const hs = handshakeCrypto(r);
    expect(hs.length).toBeGreaterThan(0);
    expect(hs.includes(certDer(vm.cert))).toBe(true);
    expect(hs.includes(certDer(local.cert))).toBe(false);
    expect(JSON.parse(r.body('json')!.toString())).toEqual({ route: 'vm', sni: 'vm', host: `vm:${gw.port}` });
  }, 20_000);

  it('SNI localhost gets the localhost certificate (and the host-less route)', async () => {
    const r = await gtls(gw.port, [`https://localhost:${gw.port}/json`], { quicDump: true });
    expect(r.code, r.stderr.slice(-1500)).toBe(0);
    const hs = handshakeCrypto(r);
    expect(hs.includes(certDer(local.cert))).toBe(true);
    expect(hs.includes(certDer(vm.cert))).toBe(false);
    expect(JSON.parse(r.body('json')!.toString())).toEqual({ route: 'any', sni: 'localhost', host: `localhost:${gw.port}` });
  }, 20_000);

  it('an SNI without a certificate fails the handshake, as on HTTPS (no fallback certificate)', async () => {
    const r = await gtls(gw.port, [`https://runsc:${gw.port}/json`], { host: 'runsc', quicDump: true });
    // gtlsclient exits 0 here; what it received tells: the server closed the connection in the handshake.
    expect(r.responses).toHaveLength(0);
    expect(r.stdout + r.stderr).toMatch(/frm rx \d+ Initial CONNECTION_CLOSE\(0x1c\)/);
    expect(handshakeCrypto(r)).toHaveLength(0);
    expect(handshakeCrypto(r).includes(certDer(local.cert))).toBe(false);
  }, 20_000);

  it('a certificate added through the Admin API serves the next connection', async () => {
    const other = await makeCert('runsc');
    try {
      await gw.t.put('/ssls/4', { cert: other.cert, key: other.key, snis: ['runsc'] });
      const r = await gtls(gw.port, [`https://runsc:${gw.port}/json`], { host: 'runsc', quicDump: true });
      expect(r.code, r.stderr.slice(-1500)).toBe(0);
      expect(handshakeCrypto(r).includes(certDer(other.cert))).toBe(true);
      expect(JSON.parse(r.body('json')!.toString())).toMatchObject({ route: 'any', sni: 'runsc' });
    } finally {
      await gw.t.admin('DELETE', '/ssls/4');
      await gw.t.synced();
      await other.cleanup();
    }
  }, 20_000);

  it('an ssl object with client.ca: a client without a certificate gets 400 unless skip_mtls_uri_regex matches', async () => {
    const secure = await makeCert('runsc');
    try {
      await gw.t.put('/ssls/5', { cert: secure.cert, key: secure.key, snis: ['runsc'], client: { ca: local.cert, skip_mtls_uri_regex: ['^/open'] } });
      const r = await gtls(gw.port, [`https://runsc:${gw.port}/json`, `https://runsc:${gw.port}/open`], { host: 'runsc' });
      expect(r.code, r.stderr.slice(-1500)).toBe(0);
      expect(r.responses.map((h) => h[':status']).sort()).toEqual(['200', '400']);
      expect(JSON.parse(r.body('open')!.toString())).toMatchObject({ route: 'any', sni: 'runsc' });
      // Another SNI cannot front for that Host (as on HTTPS): the Host's ssl object requires a certificate.
      const front = await gtls(gw.port, [`https://runsc:${gw.port}/open`]);
      expect(front.responses.map((h) => h[':status'])).toEqual(['400']);
    } finally {
      await gw.t.admin('DELETE', '/ssls/5');
      await gw.t.synced();
      await secure.cleanup();
    }
  }, 20_000);

  it('the connection event carries the SNI and the ssl object', async () => {
    const seen: Http3ConnectionMessage[] = [];
    const onConnection = (m: unknown): void => void seen.push(m as Http3ConnectionMessage);
    subscribe(HTTP3_CONNECTION, onConnection);
    try {
      const r = await gtls(gw.port, [`https://vm:${gw.port}/json`], { host: 'vm' });
      expect(r.code).toBe(0);
    } finally {
      unsubscribe(HTTP3_CONNECTION, onConnection);
    }
    const mine = seen.filter((m) => m.serverPort === gw.port);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ servername: 'vm', sslId: '2' });
  }, 20_000);
});

it('Chromium: a wildcard SNI gets the wildcard certificate over HTTP/3 (only its SPKI is accepted)', async () => {
  expect(existsSync(CHROMIUM), `${CHROMIUM} missing: apt-get install -y chromium`).toBe(true);
  const origin = `app.wild.test:${gw.port}`;
  const { out, err } = await chromiumDump(`https://${origin}/page`, origin, [wild.spki]);
  expect(out, err.slice(-2000)).toContain('proto=h3');
  expect(out).toContain('route=wild sni=app.wild.test');
}, 40_000);
