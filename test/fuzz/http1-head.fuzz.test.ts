// Fuzz target: the request-head parser of the socket HTTP/1.1 engine (protocols/http1) through a real gateway
// socket, the way a client reaches it. Inputs: heads assembled from dictionaries (methods, targets with dot
// segments and escapes, versions, framing headers in conflicting combinations, duplicate Host, bare CR/LF,
// obs-fold, NUL, long values), byte mutations of valid requests (flip, cut, splice, extend, extreme lengths),
// random bytes; each sent on a fresh connection, a quarter of them followed by a half-close, the rest left open.
// Properties: every connection gets a well-formed response or a close, within the header/body timeouts (0.5 s
// here) plus slack, never a 500 (a thrown handler); after every batch a plain request on a new connection
// is served 200, so no input wedged or killed the listener. The count is bounded even under FUZZ_RUNS
// (each input is a connection).
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { raw } from '../http1/raw.ts';
import { mutatedBytes, params, runs } from './runs.ts';

let up: EchoServer;
let gw: TestGateway;

beforeAll(async () => {
  up = await startEcho('up');
  gw = await startTestGateway({
    config: {
      switchyard: {
        http1_engine: 'socket',
        limits: { max_header_size: 4096, max_headers_count: 50, client_header_timeout: 0.5, client_body_timeout: 0.5, keepalive_timeout: 0.5 },
      },
    },
  });
  await gw.put('/routes/any', { uri: '/*', upstream: { nodes: { [up.addr]: 1 } } });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await up?.close();
});

const SEEDS = [
  'GET /f?q=1 HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\r\n',
  'POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc',
  'POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
  'GET /a/../b HTTP/1.0\r\n\r\n',
  'GET http://a/x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
].map((s) => Buffer.from(s, 'latin1'));

// Each part is usually well-formed and sometimes hostile, so inputs get past the first check often enough to
// reach the later ones (framing, Host, limits, pipelining).
const GOOD = { weight: 4 };
const BAD = { weight: 1 };
const METHOD = fc.oneof({ ...GOOD, arbitrary: fc.constantFrom('GET', 'POST', 'HEAD', 'DELETE', 'OPTIONS') }, { ...BAD, arbitrary: fc.constantFrom('CONNECT', 'PRI', 'get', 'G@T', '', 'M'.repeat(40)) });
const TARGET = fc.oneof(
  { ...GOOD, arbitrary: fc.constantFrom('/', '/a', '/a/../b', '/%2e%2e/x', '/x?q=1', '//x', 'http://a/b', '/%C3%A9') },
  { ...BAD, arbitrary: fc.constantFrom('/../x', '*', 'a:1', '/%zz', '/\u0000', '/a b', '/?' + 'q'.repeat(5000), '') },
);
const VERSION = fc.oneof({ ...GOOD, arbitrary: fc.constantFrom('HTTP/1.1', 'HTTP/1.0') }, { ...BAD, arbitrary: fc.constantFrom('HTTP/2.0', 'HTTP/1.7', 'HTTP/1', 'http/1.1', '', 'HTTP/1.1 extra') });
const HEADER = fc.oneof(
  { ...GOOD, arbitrary: fc.constantFrom('Content-Length: 3', 'Content-Length: 0', 'Transfer-Encoding: chunked', 'Connection: close', 'Connection: keep-alive', 'Expect: 100-continue', 'X-Forwarded-For: 1.2.3.4', 'Cookie: a=b; c', 'Te: trailers', 'Upgrade: h2c', 'Connection: Upgrade') },
  {
    ...BAD,
    arbitrary: fc.constantFrom(
      'Host: b', 'Host: [::1]', 'Host: a:99999', 'Host:', 'Host: [/]', 'Content-Length: -1', 'Content-Length: 99999999999999999999', 'Content-Length: 1, 2',
      'Transfer-Encoding: gzip, chunked', 'Transfer-Encoding: chunked, identity', 'X-A: b\r\n c', 'X-A : b', 'X-A: \u0000', 'X-A: \u00ff',
      'X-Big: ' + 'x'.repeat(5000), ': empty', 'NoColon',
    ),
  },
);
const EOL = fc.oneof({ weight: 12, arbitrary: fc.constant('\r\n') }, { weight: 1, arbitrary: fc.constantFrom('\n', '\r', ' \r\n') });
const BODY = fc.constantFrom('', 'abc', '0\r\n\r\n', '3\r\nabc\r\n0\r\n\r\n', 'zz\r\n', 'GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n');

const assembled = fc
  .record({
    method: METHOD,
    target: TARGET,
    version: VERSION,
    host: fc.oneof({ ...GOOD, arbitrary: fc.constant('Host: a\r\n') }, { ...BAD, arbitrary: fc.constant('') }),
    headers: fc.array(fc.tuple(HEADER, EOL), { maxLength: 5 }),
    end: EOL,
    body: BODY,
  })
  .map((r) => Buffer.from(`${r.method} ${r.target} ${r.version}\r\n${r.host}${r.headers.map(([h, e]) => h + e).join('')}${r.end}${r.body}`, 'latin1'));

const input = fc.record({
  bytes: fc.oneof({ weight: 2, arbitrary: assembled }, { weight: 2, arbitrary: mutatedBytes(SEEDS, 600) }),
  // A half-close aborts the request on both engines, as nginx does (499): most inputs stay open instead.
  halfClose: fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
});

type Input = typeof input extends fc.Arbitrary<infer T> ? T : never;

// Each input is a connection (up to the header timeout when it stays open): bounded even under FUZZ_RUNS.
const N = Math.min(runs(64), 2000);
const BATCH = 16;

describe('fuzz: socket HTTP/1.1 engine request heads through a gateway socket', () => {
  it(`every connection gets a response or a close; the listener keeps serving (${N} inputs)`, async () => {
    const cases: Input[] = fc.sample(input, params(N) as fc.Parameters<Input>);
    const statuses = new Map<string, number>();
    for (let i = 0; i < cases.length; i += BATCH) {
      await Promise.all(
        cases.slice(i, i + BATCH).map(async ({ bytes, halfClose }) => {
          const r = await raw(gw.port, [bytes], { end: halfClose, idleMs: 4000, totalMs: 8000 });
          const what = JSON.stringify(bytes.toString('latin1').slice(0, 200));
          // A response or a close: a connection left hanging past the timeouts fails here.
          expect(r.closedByPeer || r.statuses.length > 0, `no answer and no close: ${what}`).toBe(true);
          if (r.text.length > 0) expect(r.text, what).toMatch(/^HTTP\/1\.[01] \d{3} /);
          for (const s of r.statuses) {
            const code = s.slice(9, 12);
            statuses.set(code, (statuses.get(code) ?? 0) + 1);
            expect(code, `a thrown handler answers 500: ${what}`).not.toBe('500');
          }
        }),
      );
      const ok = await raw(gw.port, ['GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n']);
      expect(ok.statuses).toEqual(['HTTP/1.1 200 OK']);
    }
    console.log(`http1 head fuzz: ${cases.length} connections, statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);
  }, 30_000 + N * 1000);
});
