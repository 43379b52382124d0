// Malformed requests are answered (400/408/431) without disturbing other clients of the same gateway.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { client, curl } from './client.ts';

let gw: TestGateway;
let up: EchoServer;
const cl = client();

beforeAll(async () => {
  up = await startEcho('ok');
  gw = await startTestGateway({ config: { switchyard: { limits: { max_header_size: 8192, client_header_timeout: 1 } } } });
  await gw.put('/routes/any', { uri: '/*', upstream: { nodes: { [up.addr]: 1 } } });
});

afterAll(async () => {
  await cl.close();
  await gw?.close();
  await up?.close();
});

/** Writes raw bytes and returns the status line the gateway answers with ('' when it just closes). */
function rawStatus(data: string | Buffer, opts: { endAfterWrite?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(gw.port, '127.0.0.1');
    let buf = '';
    s.setTimeout(10_000, () => s.destroy(new Error('no answer')));
    s.on('data', (d) => (buf += d.toString('latin1')));
    s.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? resolve(buf.split('\r\n')[0]!) : reject(err)));
    s.on('close', () => resolve(buf.split('\r\n')[0]!));
    s.write(data);
    if (opts.endAfterWrite) s.end();
  });
}

/** A well-behaved keep-alive client hammering the gateway until stopped; returns its statuses. */
function background(): { stop(): Promise<number[]> } {
  let running = true;
  const statuses: number[] = [];
  const loop = (async () => {
    for (let i = 0; i < 2000 && running; i++) statuses.push((await cl.call(`${gw.url}/fine/${i}`)).status);
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return statuses;
    },
  };
}

describe('bad input', () => {
  test('malformed request line, invalid header, oversized headers: 400/431 while others keep getting 200', async () => {
    const bg = background();
    const answers = await Promise.all([
      rawStatus('GARBAGE\r\n\r\n'),
      rawStatus('GET /x HTTP/9.9.9\r\nHost: a\r\n\r\n'),
      rawStatus('GET /x HTTP/1.1\r\nHost: a\r\nBad Header: y\r\n\r\n'),
      rawStatus('GET /x HTTP/1.1\r\nHost: a\r\nX-Ctl: a\u0001b\r\n\r\n'),
      rawStatus(`GET /x HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
      rawStatus('GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'),
    ]);
    const statuses = await bg.stop();
    expect(answers).toEqual([
      'HTTP/1.1 400 Bad Request',
      'HTTP/1.1 400 Bad Request',
      'HTTP/1.1 400 Bad Request',
      'HTTP/1.1 400 Bad Request',
      'HTTP/1.1 431 Request Header Fields Too Large',
      'HTTP/1.1 400 Bad Request',
    ]);
    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses.every((s) => s === 200)).toBe(true);
    // The gateway still serves new connections afterwards.
    expect((await curl([`${gw.url}/after`])).status).toBe(200);
  });

  test('invalid percent-encoding in the path is a 400; valid encoding is matched decoded and forwarded as sent', async () => {
    expect(await rawStatus('GET /bad/%zz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')).toBe('HTTP/1.1 400 Bad Request');
    const c = await curl([`${gw.url}/bad/%zz`]);
    expect(c.status).toBe(400);
    const ok = await cl.call(`${gw.url}/good/a%20b%2Fc`);
    expect(ok.status).toBe(200);
    expect(ok.json().url).toBe('/good/a%20b%2Fc');
  });

  test('a client that never finishes its headers is cut off (client_header_timeout) without affecting others', async () => {
    const bg = background();
    const answer = await rawStatus('GET /slow HTTP/1.1\r\nHost: a\r\nX-Partial: ');
    const statuses = await bg.stop();
    expect(answer === '' || answer === 'HTTP/1.1 408 Request Timeout').toBe(true);
    expect(statuses.every((s) => s === 200)).toBe(true);
  });
});
