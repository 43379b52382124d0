// Requests an HTTP/1.1 codec refuses get the same answer on both engines (node:http and the socket engine), from
// one mapping (refusalCode in src/pipeline/raw-answer.ts). The case the two engines used to disagree on: a chunked
// body whose chunk extensions exceed node's parser cap (16 KiB, CVE-2024-22019). nginx skips extensions of any
// length (nginx 1.22.1 proxies a 2 MB one), so there is no nginx answer to copy: both engines answer node's own
// status, 413, with nginx's 413 page, close the connection, and the upstream never receives a complete request;
// a request already answered (a plugin answered before reading the body) only gets its connection closed.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { raw } from '../http1/raw.ts';

// One gateway per engine: the suite-wide engine override must not make both the same.
delete process.env.SWITCHYARD_HTTP1_ENGINE;

let up: EchoServer;
const engines: Record<string, TestGateway> = {};

beforeAll(async () => {
  up = await startEcho('up');
  const [sock, node] = await Promise.all([
    startTestGateway({ config: { switchyard: { http1_engine: 'socket' } } }),
    startTestGateway({ config: { switchyard: { http1_engine: 'node' } } }),
  ]);
  engines.socket = sock;
  engines.node = node;
  for (const g of [sock, node]) {
    await g.put('/routes/any', { uri: '/*', upstream: { nodes: { [up.addr]: 1 } } });
    await g.put('/routes/local', { uri: '/local', plugins: { 'fault-injection': { abort: { http_status: 403, body: 'local-answer' } } } });
  }
});

afterAll(async () => {
  await Promise.all(Object.values(engines).map((g) => g.close()));
  await up?.close();
});

const HEAD = 'POST /ext HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n';
/** One 5-byte chunk whose extension is 20 KiB: above node's 16 KiB cap. */
const OVERSIZED = `5;a=${'x'.repeat(20 * 1024)}\r\nhello\r\n0\r\n\r\n`;

describe('oversized chunk extensions', () => {
  for (const engine of ['node', 'socket']) {
    test.each([
      ['with the head', [HEAD + OVERSIZED]],
      ['after the head, while the request is proxied', [HEAD, OVERSIZED]],
    ])(`${engine} engine: 413 with the error page, connection closed (%s)`, async (_name, parts) => {
      const r = await raw(engines[engine]!.port, parts, { gapMs: 100 });
      expect(r.statuses.map((l) => l.slice(9, 12))).toEqual(['413']);
      expect(r.text).toMatch(/\r\ncontent-type: text\/html/i);
      expect(r.text).toContain('<title>413 Request Entity Too Large</title>');
      expect(r.closedByPeer).toBe(true);
      expect(up.seen.some((s) => s.url === '/ext')).toBe(false);
    });
  }

  test('an extension within the cap is proxied on both engines', async () => {
    const body = `5;a=${'x'.repeat(1024)}\r\nhello\r\n0\r\n\r\n`;
    for (const engine of ['node', 'socket']) {
      const r = await raw(engines[engine]!.port, [HEAD.replace('Host: a', 'Host: a\r\nConnection: close') + body]);
      expect(r.statuses.map((l) => l.slice(9, 12))).toEqual(['200']);
    }
    expect(up.seen.filter((s) => s.url === '/ext').map((s) => s.bodyLength)).toEqual([5, 5]);
  });

  for (const engine of ['node', 'socket']) {
    test(`${engine} engine: a request answered before its body was read gets no second answer`, async () => {
      // fault-injection answers 403 in rewrite; the oversized extension arrives after that answer went out:
      // writing the 413 then would be an unsolicited second response on the connection.
      const r = await raw(engines[engine]!.port, [HEAD.replace('/ext', '/local'), OVERSIZED], { gapMs: 500 });
      expect(r.text).toContain('local-answer');
      expect(r.statuses.map((l) => l.slice(9, 12))).toEqual(['403']);
      expect(r.text).not.toContain('413');
      expect(r.closedByPeer).toBe(true);
    });
  }

  test('a malformed request after a proxied one on a keep-alive connection is still answered 400, on both engines', async () => {
    const first = 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n';
    for (const engine of ['node', 'socket']) {
      const r = await raw(engines[engine]!.port, [first, 'G@T /a HTTP/1.1\r\nHost: a\r\n\r\n'], { gapMs: 200 });
      expect([engine, r.statuses.map((l) => l.slice(9, 12))]).toEqual([engine, ['200', '400']]);
      expect(r.closedByPeer).toBe(true);
    }
  });
});
