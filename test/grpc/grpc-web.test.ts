// grpc-web plugin against a real @grpc/grpc-js upstream, driven by hand-built clients (fetch and node:http)
// that speak the wire format themselves: 5-byte frames, the 0x80 trailer frame, base64 text bodies. Mirrors
// APISIX t/plugin/grpc-web.t (preflight, 405, 400, CORS, absolute route, trailers-only errors) and adds
// streaming timing (frames are flushed as they arrive) and request bodies cut at every quad boundary.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import {
  decodeTextBody,
  EchoReplyType,
  EchoRequestType,
  frame,
  parseFrames,
  parseTrailerBlock,
  startGrpcUpstream,
  StreamRequestType,
  type GrpcUpstream,
} from '../helpers/grpc.ts';
import { freePort } from '../helpers/ports.ts';

let gw: TestGateway;
let up: GrpcUpstream;

const BIN = 'application/grpc-web+proto';
const TEXT = 'application/grpc-web-text';

beforeAll(async () => {
  up = await startGrpcUpstream();
  gw = await startTestGateway();
  const upstream = { scheme: 'grpc', nodes: { [up.addr]: 1 } };
  await gw.put('/routes/web', { uri: '/grpc/web/*', upstream, plugins: { 'grpc-web': {} } });
  await gw.put('/routes/exact', { uri: '/swytest.Echo/Unary', upstream, plugins: { 'grpc-web': {} } });
  await gw.put('/routes/custom', { uri: '/custom/*', upstream, plugins: { 'grpc-web': { cors_allow_headers: 'grpc-accept-encoding' } } });
  await gw.put('/routes/small', { uri: '/small/*', upstream, plugins: { 'grpc-web': { max_req_body_size: 16 } } });
  await gw.put('/routes/cors', {
    uri: '/cors/*',
    upstream,
    plugins: {
      'grpc-web': {},
      cors: { allow_origins: 'http://test.com', allow_methods: 'POST,OPTIONS', allow_headers: 'application/grpc-web', expose_headers: 'application/grpc-web', max_age: 5, allow_credential: true },
    },
  });
  await gw.put('/routes/down', { uri: '/down/*', upstream: { scheme: 'grpc', nodes: { [`127.0.0.1:${await freePort()}`]: 1 } }, plugins: { 'grpc-web': {} } });
});

afterAll(async () => {
  await gw?.close();
  await up?.close();
});

interface WebReply {
  status: number;
  headers: Headers;
  body: Buffer;
  frames: { flag: number; payload: Buffer }[];
}

async function call(path: string, mime: string, body: Buffer | string, headers: Record<string, string> = {}): Promise<WebReply> {
  const res = await fetch(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': mime, 'x-grpc-web': '1', ...headers }, body });
  const raw = Buffer.from(await res.arrayBuffer());
  const bytes = mime.startsWith(TEXT) ? decodeTextBody(raw.toString('latin1')) : raw;
  return { status: res.status, headers: res.headers, body: raw, frames: res.status === 200 ? parseFrames(bytes) : [] };
}

function unaryBody(req: Record<string, unknown>, mime: string): Buffer | string {
  const f = frame(EchoRequestType.encode(EchoRequestType.fromObject(req)).finish());
  return mime.startsWith(TEXT) ? f.toString('base64') : f;
}

describe.each([BIN, 'application/grpc-web', TEXT, 'application/grpc-web-text+proto'])('grpc-web %s', (mime) => {
  test('unary: one message frame, then the trailer frame with grpc-status 0 and the upstream trailers', async () => {
    const r = await call('/grpc/web/swytest.Echo/Unary', mime, unaryBody({ text: 'hello' }, mime));
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe(mime);
    expect(r.headers.get('content-length')).toBeNull();
    expect(r.headers.get('access-control-allow-origin')).toBe('*');
    expect(r.headers.get('access-control-expose-headers')).toBe('grpc-message,grpc-status');
    expect(r.frames).toHaveLength(2);
    expect(r.frames[0]!.flag).toBe(0);
    expect(EchoReplyType.toObject(EchoReplyType.decode(r.frames[0]!.payload)).text).toBe('hello');
    expect(r.frames[1]!.flag).toBe(0x80);
    const trailers = parseTrailerBlock(r.frames[1]!.payload);
    expect(trailers).toMatchObject({ 'grpc-status': '0', 'grpc-message': 'OK', 'x-trailer': 'unary' });
  });

  test('an upstream error without messages stays trailers-only: grpc-status in the head, empty body', async () => {
    const r = await call('/grpc/web/swytest.Echo/Unary', mime, unaryBody({ fail_code: 13, fail_message: 'execpted error' }, mime));
    expect(r.status).toBe(200);
    expect(r.headers.get('grpc-status')).toBe('13');
    // grpc-js percent-encodes the message; it passes through as sent.
    expect(decodeURIComponent(r.headers.get('grpc-message') ?? '')).toBe('execpted error');
    expect(r.body.length).toBe(0);
  });

  test('server streaming: each frame reaches the client before the upstream sends the next', async () => {
    const f = frame(StreamRequestType.encode({ text: 's', count: 4, interval_ms: 150 }).finish());
    const res = await fetch(`${gw.url}/grpc/web/swytest.Echo/ServerStream`, {
      method: 'POST',
      headers: { 'content-type': mime },
      body: mime.startsWith(TEXT) ? f.toString('base64') : f,
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let acc = Buffer.alloc(0);
    const firstSeen: number[] = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      acc = Buffer.concat([acc, Buffer.from(value)]);
      const n = completeFrames(mime.startsWith(TEXT) ? decodeTextBody(quadPrefix(acc)) : acc);
      while (firstSeen.length < n) firstSeen.push(Date.now());
    }
    const frames = parseFrames(mime.startsWith(TEXT) ? decodeTextBody(acc.toString('latin1')) : acc);
    expect(frames.map((x) => x.flag)).toEqual([0, 0, 0, 0, 0x80]);
    const sentAt = frames.slice(0, 4).map((x) => EchoReplyType.decode(x.payload).toJSON().sent_at as number);
    // Messages are 150 ms apart upstream; message i must have arrived before message i+1 was sent.
    for (let i = 0; i < 3; i++) expect(firstSeen[i]!).toBeLessThan(sentAt[i + 1]!);
    expect(parseTrailerBlock(frames[4]!.payload)['grpc-status']).toBe('0');
  });
});

/** Number of complete frames at the start of `buf`. */
function completeFrames(buf: Buffer): number {
  let n = 0;
  let off = 0;
  while (off + 5 <= buf.length) {
    const end = off + 5 + buf.readUInt32BE(off + 1);
    if (end > buf.length) break;
    n++;
    off = end;
  }
  return n;
}

function quadPrefix(acc: Buffer): string {
  return acc.toString('latin1', 0, acc.length - (acc.length % 4));
}

describe('grpc-web request bodies', () => {
  test('a text body sent in pieces that split base64 quads, as two padded segments', async () => {
    const msg = Buffer.from(EchoRequestType.encode({ text: 'split across quads ✓' }).finish());
    const whole = frame(msg);
    // Two separately padded segments (a client flushing twice), then cut into 1..3-character pieces.
    const text = whole.subarray(0, 4).toString('base64') + whole.subarray(4).toString('base64');
    expect(text.indexOf('=')).toBeLessThan(text.length - 2);
    const pieces: string[] = [];
    for (let i = 0, n = 1; i < text.length; i += n, n = (n % 3) + 1) pieces.push(text.slice(i, i + n));
    const reply = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      const req = http.request(`${gw.url}/grpc/web/swytest.Echo/Unary`, { method: 'POST', headers: { 'content-type': TEXT } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      void (async () => {
        for (const p of pieces) {
          req.write(p);
          await new Promise((r) => setTimeout(r, 2));
        }
        req.end();
      })();
    });
    expect(reply.status).toBe(200);
    const frames = parseFrames(decodeTextBody(reply.body.toString('latin1')));
    expect(EchoReplyType.decode(frames[0]!.payload).toJSON().text).toBe('split across quads ✓');
  });

  test('malformed base64 fails the call (no OK status)', async () => {
    const r = await call('/grpc/web/swytest.Echo/Unary', TEXT, 'AAAA!AAA');
    const status = r.headers.get('grpc-status') ?? (r.frames.length > 0 ? parseTrailerBlock(r.frames.at(-1)!.payload)['grpc-status'] : undefined);
    expect(status).toBeDefined();
    expect(status).not.toBe('0');
  });

  test('a body over max_req_body_size is refused (400)', async () => {
    const r = await call('/small/swytest.Echo/Unary', BIN, unaryBody({ text: 'x'.repeat(64) }, BIN));
    expect(r.status).toBe(400);
    const ok = await call('/small/swytest.Echo/Unary', BIN, unaryBody({ text: 'x' }, BIN));
    expect(ok.status).toBe(200);
  });
  test('a streamed body (no Content-Length) growing over max_req_body_size fails the call, the gateway keeps serving', async () => {
    const body = Buffer.from(unaryBody({ text: 'y'.repeat(64) }, BIN) as Buffer);
    const reply = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      const req = http.request(`${gw.url}/small/swytest.Echo/Unary`, { method: 'POST', headers: { 'content-type': BIN } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.write(body.subarray(0, 10));
      setTimeout(() => req.end(body.subarray(10)), 20);
    });
    const status = reply.headers['grpc-status'] ?? (reply.status === 200 && reply.body.length > 0 ? parseTrailerBlock(parseFrames(reply.body).at(-1)!.payload)['grpc-status'] : String(reply.status));
    expect(status).not.toBe('0');
    const ok = await call('/small/swytest.Echo/Unary', BIN, unaryBody({ text: 'x' }, BIN));
    expect(ok.status).toBe(200);
  });
});

describe('grpc-web as APISIX answers it (t/plugin/grpc-web.t)', () => {
  test('OPTIONS: 204 with the allowed methods and headers', async () => {
    const res = await fetch(`${gw.url}/grpc/web/swytest.Echo/Unary`, { method: 'OPTIONS' });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-methods')).toBe('POST');
    expect(res.headers.get('access-control-allow-headers')).toBe('content-type,x-grpc-web,x-user-agent');
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-expose-headers')).toBe('grpc-message,grpc-status');
    const custom = await fetch(`${gw.url}/custom/swytest.Echo/Unary`, { method: 'OPTIONS' });
    expect(custom.headers.get('access-control-allow-headers')).toBe('grpc-accept-encoding');
  });

  test('GET: 405; a non gRPC-Web content type: 400 HTML; both with CORS', async () => {
    const get = await fetch(`${gw.url}/grpc/web/swytest.Echo/Unary`);
    expect(get.status).toBe(405);
    expect(get.headers.get('access-control-allow-origin')).toBe('*');
    const json = await fetch(`${gw.url}/grpc/web/swytest.Echo/Unary`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(json.status).toBe(400);
    expect(json.headers.get('content-type')).toMatch(/^text\/html/);
    expect(json.headers.get('access-control-allow-origin')).toBe('*');
  });

  test('absolute route URI: the path is kept', async () => {
    const r = await call('/swytest.Echo/Unary', 'application/grpc-web', unaryBody({ text: 'exact' }, BIN));
    expect(r.status).toBe(200);
    expect(EchoReplyType.decode(r.frames[0]!.payload).toJSON().text).toBe('exact');
  });

  test('with the cors plugin: its origin is kept, the gRPC headers are exposed', async () => {
    const r = await call('/cors/swytest.Echo/Unary', TEXT, 'AAAAAAcKBXdvcmxkCgo=', { origin: 'http://test.com' });
    expect(r.status).toBe(200);
    expect(r.headers.get('access-control-allow-origin')).toBe('http://test.com');
    expect(r.headers.get('access-control-expose-headers')).toBe('grpc-message,grpc-status');
    expect(EchoReplyType.decode(r.frames[0]!.payload).toJSON().text).toBe('world');
  });

  test('gateway errors after the plugin ran are gRPC-Web trailers-only (upstream down: UNAVAILABLE)', async () => {
    const r = await call('/down/swytest.Echo/Unary', BIN, unaryBody({ text: 'x' }, BIN));
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe(BIN);
    expect(r.headers.get('grpc-status')).toBe('14');
    expect(r.body.length).toBe(0);
  });
});
