// Strictness of the socket HTTP/1.1 engine: request-smuggling and limit cases answered exactly as the node:http
// engine answers them (a differential against node's own server on the same gateway config), nothing smuggled
// reaches the upstream, plus a bounded fuzz run of byte mutations compared between the two engines.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { raw } from './raw.ts';

// The differential needs one gateway per engine: the suite-wide engine override must not make both the same.
delete process.env.SWITCHYARD_HTTP1_ENGINE;

let up: EchoServer;
let sock: TestGateway;
let node: TestGateway;
const limits = { max_header_size: 4096, max_headers_count: 50 };

beforeAll(async () => {
  up = await startEcho('up');
  [sock, node] = await Promise.all([
    startTestGateway({ config: { switchyard: { http1_engine: 'socket', limits } } }),
    startTestGateway({ config: { switchyard: { http1_engine: 'node', limits } } }),
  ]);
  for (const g of [sock, node]) await g.put('/routes/any', { uri: '/*', upstream: { nodes: { [up.addr]: 1 } } });
});

afterAll(async () => {
  await Promise.all([sock?.close(), node?.close()]);
  await up?.close();
});

const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n';

/** Each case is followed by a request a lenient parser would take as a second one. */
const CASES: [string, string, string][] = [
  ['CL + TE', 'POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', '400'],
  ['TE + CL', 'POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n', '400'],
  ['duplicate CL, different', 'POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', '400'],
  ['duplicate CL, same', 'POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab', '400'],
  ['CL with sign', 'POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: +2\r\n\r\nab', '400'],
  ['CL not a number', 'POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 2a\r\n\r\nab', '400'],
  ['TE chunked not last', 'POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n', '400'],
  ['TE xchunked', 'POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n', '400'],
  ['obs-fold', 'GET /a HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n', '400'],
  ['bare LF in head', 'GET /a HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n', '400'],
  ['bare CR', 'GET /a HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n', '400'],
  ['space before colon', 'GET /a HTTP/1.1\r\nHost : a\r\n\r\n', '400'],
  ['NUL in header value', 'GET /a HTTP/1.1\r\nHost: a\r\nX-A: b\u0000c\r\n\r\n', '400'],
  ['NUL in target', 'GET /a\u0000b HTTP/1.1\r\nHost: a\r\n\r\n', '400'],
  ['invalid chunk size', 'POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n', '400'],
  ['chunk size overflow', 'POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nab\r\n0\r\n\r\n', '400'],
  ['chunk without CRLF after data', 'POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n', '400'],
  ['space after chunk size', 'POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2 \r\nab\r\n0\r\n\r\n', '400'],
  ['bad version', 'GET /a HTTP/1.7\r\nHost: a\r\n\r\n', '400'],
  ['bad method', 'G@T /a HTTP/1.1\r\nHost: a\r\n\r\n', '400'],
  ['oversized head', `GET /a HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(6000)}\r\n\r\n`, '431'],
];

describe('request smuggling and limits: same answers as node:http, nothing smuggled', () => {
  test.each(CASES)('%s', async (_name, req, want) => {
    const [s, n] = await Promise.all([raw(sock.port, [req + SMUGGLED]), raw(node.port, [req + SMUGGLED])]);
    expect(s.statuses[0]?.slice(9, 12)).toBe(want);
    expect(s.statuses.map((l) => l.slice(9, 12))).toEqual(n.statuses.map((l) => l.slice(9, 12)));
    // Malformed requests end the connection: the smuggled request is never parsed.
    if (want !== '200') expect(s.closedByPeer).toBe(true);
    expect(up.seen.some((r) => r.url === '/smuggled')).toBe(false);
  });

  test('Host missing on HTTP/1.1 or repeated: the pipeline answers 400 and the connection goes on, on both engines', async () => {
    for (const req of ['GET /a HTTP/1.1\r\nX-A: b\r\n\r\n', 'GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n']) {
      const next = 'GET /after-bad-host HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n';
      const [s, n] = await Promise.all([raw(sock.port, [req + next]), raw(node.port, [req + next])]);
      expect(s.statuses.map((l) => l.slice(9, 12))).toEqual(['400', '200']);
      expect(n.statuses.map((l) => l.slice(9, 12))).toEqual(['400', '200']);
    }
  });

  test('more header fields than max_headers_count: 431 (node:http silently drops the extra fields)', async () => {
    let req = 'GET /a HTTP/1.1\r\nHost: a\r\n';
    for (let i = 0; i < 60; i++) req += `X-H${i}: v\r\n`;
    const s = await raw(sock.port, [req + '\r\n']);
    expect(s.statuses[0]).toBe('HTTP/1.1 431 Request Header Fields Too Large');
  });

  test('a head split into one-byte writes is parsed like one write', async () => {
    const req = 'GET /split?x=1 HTTP/1.1\r\nHost: a\r\nX-Long-Header-Name: some value\r\nConnection: close\r\n\r\n';
    const r = await raw(sock.port, [...req].map((c) => c), { gapMs: 1 });
    expect(r.statuses).toEqual(['HTTP/1.1 200 OK']);
    expect(r.text).toContain('"url":"/split?x=1"');
    expect(r.text).toContain('"x-long-header-name":"some value"');
  });
});

describe('heads llhttp flags as upgrades (Upgrade + Connection: upgrade, CONNECT)', () => {
  // The parser binding reports errors and pauses of such heads as a byte count: these once hung or cut the
  // connection on the socket engine.
  test('CONNECT: closed unanswered on both engines, nothing reaches the upstream', async () => {
    const req = 'CONNECT up.example:443 HTTP/1.1\r\nHost: up.example:443\r\n\r\n';
    const [s, n] = await Promise.all([raw(sock.port, [req]), raw(node.port, [req])]);
    for (const r of [s, n]) {
      expect(r.text).toBe('');
      expect(r.closedByPeer).toBe(true);
    }
    expect(up.seen.some((r) => r.method === 'CONNECT')).toBe(false);
  });

  test('CONNECT pipelined after a GET: the GET is answered, then the connection closes', async () => {
    const r = await raw(sock.port, ['GET /before-connect HTTP/1.1\r\nHost: a\r\n\r\nCONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n']);
    expect(r.statuses).toEqual(['HTTP/1.1 200 OK']);
    expect(r.closedByPeer).toBe(true);
  });

  test('too many header fields on an upgrade head: 431 and close', async () => {
    let req = 'GET /a HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n';
    for (let i = 0; i < 60; i++) req += `X-H${i}: v\r\n`;
    const s = await raw(sock.port, [req + '\r\n']);
    expect(s.statuses).toEqual(['HTTP/1.1 431 Request Header Fields Too Large']);
    expect(s.closedByPeer).toBe(true);
  });

  test('a pipelined upgrade the route does not take is a plain request: it and the next one are answered in order', async () => {
    const r = await raw(sock.port, [
      'GET /u1 HTTP/1.1\r\nHost: a\r\n\r\n' +
        'GET /u2 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n' +
        'GET /u3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    ]);
    expect(r.statuses).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK', 'HTTP/1.1 200 OK']);
    expect([...r.text.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1])).toEqual(['/u1', '/u2', '/u3']);
    expect(r.closedByPeer).toBe(true);
  });
});

describe('bounded fuzz: byte mutations of valid requests answer alike on both engines', () => {
  const BASES = [
    'GET /f?q=1 HTTP/1.1\r\nHost: a\r\nX-A: b\r\nConnection: close\r\n\r\n',
    'POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc',
    'POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
  ];
  const BYTES = ['\r', '\n', '\u0000', ' ', '\t', ':', 'a', '0', '\u007f', '\u00ff', ';', ','];

  test('60 mutated requests', async () => {
    const mutation = fc.record({
      base: fc.integer({ min: 0, max: BASES.length - 1 }),
      edits: fc.array(fc.record({ at: fc.nat(), byte: fc.constantFrom(...BYTES), del: fc.boolean() }), { minLength: 1, maxLength: 3 }),
    });
    const samples = fc.sample(mutation, { numRuns: 60, seed: 19 });
    const mismatches: string[] = [];
    for (let i = 0; i < samples.length; i += 6) {
      await Promise.all(samples.slice(i, i + 6).map(async ({ base, edits }) => {
        let req = BASES[base]!;
        for (const e of edits) {
          const at = e.at % req.length;
          req = req.slice(0, at) + (e.del ? '' : e.byte) + req.slice(e.del ? at + 1 : at);
        }
        const bytes = Buffer.from(req, 'latin1');
        const [s, n] = await Promise.all([raw(sock.port, [bytes], { idleMs: 800 }), raw(node.port, [bytes], { idleMs: 800 })]);
        const a = s.statuses.map((l) => l.slice(9, 12)).join(',');
        const b = n.statuses.map((l) => l.slice(9, 12)).join(',');
        // Known, intended difference: bytes that cannot start a request right after a complete one. node:http
        // rejects them at once and drops the complete request; this engine answers it first (as nginx does),
        // then closes or answers 400.
        if (b === '400' && (a === '200' || a === '200,400')) return;
        if (a !== b) mismatches.push(`${JSON.stringify(req)}: socket ${a} node ${b}`);
      }));
    }
    expect(mismatches).toEqual([]);
  }, 20_000);
});
