// HTTP/2 rapid reset (issue 20, defect 4): a client opening streams and cancelling them at once, in batches
// of 100, gets its session ended with GOAWAY ENHANCE_YOUR_CALM after the reset budget, the upstream sees a
// bounded number of those requests, and another client is served meanwhile.
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';

let gw: TestGateway;
let upstream: http.Server;
let seen = 0;

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    seen++;
    // Slow enough that a cancelled stream is still in flight when its reset arrives.
    setTimeout(() => res.end('ok'), 50);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  gw = await startTestGateway();
  await gw.put('/routes/r', { uri: '/*', upstream: { nodes: { [`127.0.0.1:${(upstream.address() as AddressInfo).port}`]: 1 } } });
});

afterAll(async () => {
  await gw?.close();
  await new Promise((r) => upstream?.close(r));
});

function get(client: http2.ClientHttp2Session, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = client.request({ ':path': path });
    s.on('response', (h) => {
      s.resume();
      s.on('end', () => resolve(Number(h[':status'])));
    });
    s.on('error', reject);
  });
}

it('a reset flood ends the session with ENHANCE_YOUR_CALM and stays bounded upstream', async () => {
  const attacker = http2.connect(`http://127.0.0.1:${gw.port}`);
  attacker.on('error', () => undefined);
  const goaway = new Promise<number>((resolve) => attacker.once('goaway', (code) => resolve(code)));
  const closed = new Promise<void>((resolve) => attacker.once('close', () => resolve()));
  let sent = 0;
  const before = seen;
  // Bounded: at most 20 batches of 100 (2,000 streams) or until the server hangs up.
  for (let batch = 0; batch < 20 && !attacker.destroyed && !attacker.closed; batch++) {
    for (let i = 0; i < 100; i++) {
      if (attacker.destroyed || attacker.closed) break;
      try {
        const s = attacker.request({ ':path': `/flood/${sent}` });
        s.on('error', () => undefined);
        s.close(http2.constants.NGHTTP2_CANCEL);
        sent++;
      } catch {
        break;
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const code = await Promise.race([goaway, closed.then(() => -1)]);
  await closed;
  console.log(`rapid reset: ${sent} streams sent before the server ended the session (code ${code}); upstream saw ${seen - before}`);
  // The session is ended by the server (nghttp2's own flood limit answers a burst like this one).
  expect(code).not.toBe(http2.constants.NGHTTP2_NO_ERROR);
  expect(sent).toBeLessThan(2000);
  // Cancelled streams are cancelled upstream too: the previous build let 12 % of them through.
  expect(seen - before).toBeLessThanOrEqual(Math.ceil(sent * 0.01));

  // Someone else is served normally.
  const other = http2.connect(`http://127.0.0.1:${gw.port}`);
  try {
    expect(await get(other, '/fine')).toBe(200);
  } finally {
    other.close();
  }
});

it('a slower reset flood (under the nghttp2 rate limit) hits the gateway reset budget', async () => {
  const attacker = http2.connect(`http://127.0.0.1:${gw.port}`);
  attacker.on('error', () => undefined);
  const goaway = new Promise<number>((resolve) => attacker.once('goaway', (code) => resolve(code)));
  const closed = new Promise<void>((resolve) => attacker.once('close', () => resolve()));
  let sent = 0;
  // Bounded: at most 30 rounds of 10 streams, 60 ms apart (under 2 s).
  for (let round = 0; round < 30 && !attacker.destroyed && !attacker.closed; round++) {
    for (let i = 0; i < 10; i++) {
      try {
        const s = attacker.request({ ':path': `/slow-flood/${sent}` });
        s.on('error', () => undefined);
        s.close(http2.constants.NGHTTP2_CANCEL);
        sent++;
      } catch {
        break;
      }
    }
    await new Promise((r) => setTimeout(r, 60));
  }
  const code = await Promise.race([goaway, closed.then(() => -1)]);
  attacker.destroy();
  console.log(`slow reset flood: ${sent} streams sent, session ended with code ${code}`);
  expect(code).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  expect(sent).toBeLessThan(300);
});
