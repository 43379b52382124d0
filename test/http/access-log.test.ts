// The access log of proxied requests: streamed bodies are counted as they go out, aborted downloads are
// logged too, and the lines still in the log's buffer are written when the gateway shuts down.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { request } from 'undici';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { client } from './client.ts';

let gw: TestGateway;
let up: EchoServer;
let logFile: string;
let cleanup: () => Promise<void>;
const cl = client();

beforeAll(async () => {
  const t = await tempDir('swy-alog-');
  cleanup = t.cleanup;
  logFile = path.join(t.dir, 'access.log');
  up = await startEcho('alog');
  gw = await startTestGateway({ config: { switchyard: { access_log: { enable: true, path: logFile } } } });
  await gw.put('/routes/plain', { uri: '/*', upstream: { nodes: { [up.addr]: 1 } } });
  await gw.put('/routes/filtered', {
    uri: '/filtered/*',
    upstream: { nodes: { [up.addr]: 1 } },
    plugins: { 'response-rewrite': { filters: [{ regex: 'alog', replace: 'ALOG-REPLACED' }] } },
  });
});

afterAll(async () => {
  await cl.close();
  await gw?.close();
  await up?.close();
  await cleanup?.();
});

async function lines(): Promise<any[]> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
}

async function entry(uri: string): Promise<any> {
  return waitFor(async () => (await lines()).find((l) => l.request_uri === uri), 10_000, 50);
}

describe('access log', () => {
  test('body_bytes_sent counts streamed bodies (fixed length, chunked, body-filtered)', async () => {
    const fixed = await cl.call(`${gw.url}/bytes/123456`);
    expect(fixed.text.length).toBe(123456);
    const chunked = await cl.call(`${gw.url}/echo`);
    const filtered = await cl.call(`${gw.url}/filtered/x`);
    expect(filtered.text).toContain('ALOG-REPLACED');
    expect((await entry('/bytes/123456')).body_bytes_sent).toBe(123456);
    expect((await entry('/echo')).body_bytes_sent).toBe(Buffer.byteLength(chunked.text));
    const f = await entry('/filtered/x');
    expect(f.body_bytes_sent).toBe(Buffer.byteLength(filtered.text));
    expect(f.status).toBe(200);
    expect(f.upstream_status).toBe(200);
    expect(f.route_id).toBe('filtered');
  });

  test('a download the client abandons is logged with the bytes sent so far', async () => {
    const size = 64 * 1024 * 1024;
    const ac = new AbortController();
    const res = await request(`${gw.url}/bytes/${size}`, { signal: ac.signal });
    let got = 0;
    try {
      for await (const chunk of res.body) {
        got += (chunk as Buffer).length;
        if (got > 1024 * 1024) ac.abort();
      }
    } catch {
      /* aborted on purpose */
    }
    const e = await entry(`/bytes/${size}`);
    expect(e.status).toBe(200);
    expect(e.body_bytes_sent).toBeGreaterThan(0);
    expect(e.body_bytes_sent).toBeLessThan(size);
  });

  test('shutdown writes the buffered lines (a quiet gateway logs below the 16 KB buffer and the 3 s interval)', async () => {
    const t = await tempDir('swy-alog-close-');
    try {
      const file = path.join(t.dir, 'access.log');
      const own = await startTestGateway({ config: { switchyard: { access_log: { enable: true, path: file } } } });
      try {
        await own.put('/routes/plain', { uri: '/*', upstream: { nodes: { [up.addr]: 1 } } });
        expect((await cl.call(`${own.url}/before-close`)).status).toBe(200);
      } finally {
        await own.close();
      }
      const logged = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
      expect(logged.map((l) => l.request_uri)).toEqual(['/before-close']);
    } finally {
      await t.cleanup();
    }
  });
});
