// Headless Chromium (Debian package) loads a page from the gateway over HTTP/3 only (--origin-to-force-quic-on,
// the certificate's SPKI allowed) and the page itself reports the protocol of its navigation
// (PerformanceNavigationTiming.nextHopProtocol), read back with --dump-dom. Chromium's ClientHello spans two
// Initial packets and its control/QPACK streams arrive with the handshake: both library defects fixed in
// protocols/http3/quic-fixes.ts are on this path. Chromium uses the QPACK dynamic table we advertise.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { tempDir } from '../helpers/proc.ts';
import { makeCert, startH3Gateway, type H3Gateway, type TestCert } from './h3-helpers.ts';

const CHROMIUM = '/usr/bin/chromium';
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

it.runIf(existsSync(CHROMIUM))('Chromium loads a page over HTTP/3 from the gateway', async () => {
  const { dir, cleanup } = await tempDir('swy-chromium-');
  try {
    const args = [
      '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', `--user-data-dir=${dir}`,
      '--enable-quic', `--origin-to-force-quic-on=localhost:${gw.port}`,
      `--ignore-certificate-errors-spki-list=${cert.spki}`, '--host-resolver-rules=MAP localhost 127.0.0.1',
      '--virtual-time-budget=5000', '--dump-dom', `https://localhost:${gw.port}/index.html`,
    ];
    const child = spawn(CHROMIUM, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    await new Promise((resolve) => child.once('close', resolve));
    clearTimeout(timer);
    expect(out, err.slice(-2000)).toContain('proto=h3');
    expect(uas.some((ua) => ua.includes('Chrome'))).toBe(true);
  } finally {
    await cleanup();
  }
}, 30_000);
