// Headless Chromium (Debian package) loads a page from the gateway over HTTP/3 only (--origin-to-force-quic-on,
// the certificate's SPKI allowed) and the page itself reports the protocol of its navigation
// (PerformanceNavigationTiming.nextHopProtocol), read back with --dump-dom. Chromium's ClientHello spans two
// Initial packets and its control/QPACK streams arrive with the handshake: both library defects fixed in
// protocols/http3/quic-fixes.ts are on this path. Chromium uses the QPACK dynamic table we advertise.
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CHROMIUM, chromiumDump, makeCert, startH3Gateway, type H3Gateway, type TestCert } from './h3-helpers.ts';

const PAGE = `<!doctype html><html><head><title>h3 page</title></head><body><p id="proto"></p><script>
document.getElementById('proto').textContent = 'proto=' + performance.getEntriesByType('navigation')[0].nextHopProtocol;
</script></body></html>`;

let cert: TestCert;
let gw: H3Gateway;
let upstream: http.Server;
const uas: string[] = [];

beforeAll(async () => {
  cert = await makeCert();
  upstream = http.createServer((req, res) => {
    uas.push(String(req.headers['user-agent']));
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(PAGE);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  gw = await startH3Gateway(cert);
  await gw.t.put('/routes/1', { uri: '/*', upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${(upstream.address() as AddressInfo).port}`]: 1 } } });
}, 20_000);

afterAll(async () => {
  await gw?.t.close();
  await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
  await cert?.cleanup();
});

it('Chromium loads a page over HTTP/3 from the gateway', async () => {
  // Chromium is this suite's browser peer: its absence fails the test instead of skipping it.
  expect(existsSync(CHROMIUM), `${CHROMIUM} missing: apt-get install -y chromium`).toBe(true);
  const { out, err } = await chromiumDump(`https://localhost:${gw.port}/index.html`, `localhost:${gw.port}`, [cert.spki]);
  expect(out, err.slice(-2000)).toContain('proto=h3');
  expect(uas.some((ua) => ua.includes('Chrome'))).toBe(true);
}, 30_000);
