// Answers the gateway gives a gRPC client itself (no route, upstream down, upstream timeout, auth rejection,
// rate limit, IP restriction) are gRPC trailers-only responses: HTTP 200, content-type application/grpc,
// grpc-status mapped from the HTTP status as Envoy does, grpc-message with the reason, one HEADERS frame with
// END_STREAM. Checked with @grpc/grpc-js and with a raw node:http2 client; gRPC-Web and plain HTTP requests
// keep APISIX's HTTP answers.
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { EchoRequestType, echoClient, frame, startGrpcUpstream, unary, type EchoClient, type GrpcUpstream } from '../helpers/grpc.ts';
import { freePort } from '../helpers/ports.ts';
import { httpToGrpcStatus } from '../../src/pipeline/grpc.ts';

let gw: TestGateway;
let up: GrpcUpstream;
let c: EchoClient;

function route(id: string, body: Record<string, unknown>): Promise<unknown> {
  return gw.put(`/routes/${id}`, {
    uri: '/swytest.Echo/*',
    vars: [['http_x_case', '==', id]],
    upstream: { scheme: 'grpc', nodes: { [up.addr]: 1 } },
    ...body,
  });
}

beforeAll(async () => {
  up = await startGrpcUpstream();
  gw = await startTestGateway();
  const dead = await freePort();
  await route('ok', {});
  await route('down', { upstream: { scheme: 'grpc', nodes: { [`127.0.0.1:${dead}`]: 1 } } });
  await route('slow', { timeout: { connect: 1, send: 1, read: 0.3 } });
  await route('auth', { plugins: { 'key-auth': {} } });
  await route('limited', { plugins: { 'limit-count': { count: 1, time_window: 60, key_type: 'constant', key: 'grpc-test' } } });
  await route('denied', { plugins: { 'ip-restriction': { blacklist: ['127.0.0.0/8'], message: 'go away' } } });
  await gw.put('/consumers', { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' } } });
  c = echoClient(`127.0.0.1:${gw.port}`);
});

afterAll(async () => {
  c?.close();
  await gw?.close();
  await up?.close();
});

async function failure(caseId: string, req: Record<string, unknown> = { text: 'x' }, extra: Record<string, string> = {}): Promise<grpc.ServiceError> {
  const err = await unary(c, req, { metadata: { 'x-case': caseId, ...extra } }).then(
    () => null,
    (e: grpc.ServiceError) => e,
  );
  if (err === null) throw new Error(`case ${caseId} succeeded`);
  return err;
}

describe('gRPC errors answered by the gateway', () => {
  test('the HTTP -> gRPC status map is Envoy httpToGrpcStatus', () => {
    const map = Object.fromEntries([400, 401, 403, 404, 405, 409, 413, 429, 500, 502, 503, 504].map((s) => [s, httpToGrpcStatus(s)]));
    expect(map).toEqual({ 400: 13, 401: 16, 403: 7, 404: 12, 405: 2, 409: 2, 413: 2, 429: 14, 500: 2, 502: 14, 503: 14, 504: 14 });
  });

  test('the proxied call works (baseline)', async () => {
    const { reply } = await unary(c, { text: 'hi' }, { metadata: { 'x-case': 'ok' } });
    expect(reply.text).toBe('hi');
  });

  test('no route: UNIMPLEMENTED with APISIX reason', async () => {
    const err = await failure('none');
    expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(err.details).toBe('404 Route Not Found');
  });

  test('upstream down (connection refused): UNAVAILABLE', async () => {
    const err = await failure('down');
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.details).toBe('502 Bad Gateway');
  });

  test('upstream read timeout: UNAVAILABLE (504), upstream call cancelled', async () => {
    const err = await failure('slow', { text: 'x', delay_ms: 3000 });
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.details).toBe('504 Gateway Time-out');
    expect(await up.waitEvent('Unary:cancelled', 3000)).toBe(true);
  });

  test('auth plugin rejection: UNAUTHENTICATED with the plugin message; a valid key passes', async () => {
    const err = await failure('auth');
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(err.details).toBe('Missing API key in request');
    const bad = await failure('auth', { text: 'x' }, { apikey: 'nope' });
    expect(bad.details).toBe('Invalid API key in request');
    const { reply } = await unary(c, { text: 'ok' }, { metadata: { 'x-case': 'auth', apikey: 'jack-key' } });
    expect(reply.text).toBe('ok');
  });

  test('rate limit: UNAVAILABLE once the count is used up', async () => {
    await unary(c, { text: 'first' }, { metadata: { 'x-case': 'limited' } });
    const err = await failure('limited');
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
  });

  test('ip-restriction: PERMISSION_DENIED with the configured message', async () => {
    const err = await failure('denied');
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.details).toBe('go away');
  });
});

describe('on the wire', () => {
  function raw(headers: http2.OutgoingHttpHeaders, body: Buffer): Promise<{ headers: http2.IncomingHttpHeaders; endStreamOnHead: boolean; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const s = http2.connect(gw.url);
      const req = s.request({ ':method': 'POST', ...headers });
      let head: http2.IncomingHttpHeaders = {};
      let endStreamOnHead = false;
      const chunks: Buffer[] = [];
      req.on('response', (h, flags) => {
        head = h;
        endStreamOnHead = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
      });
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('error', reject);
      req.on('close', () => {
        s.close();
        resolve({ headers: head, endStreamOnHead, body: Buffer.concat(chunks) });
      });
      req.end(body);
    });
  }

  test('trailers-only: HTTP 200, application/grpc, grpc-status and percent-encoded grpc-message, one HEADERS frame', async () => {
    const body = frame(EchoRequestType.encode({ text: 'x' }).finish());
    const r = await raw({ ':path': '/nowhere.Service/Call', 'content-type': 'application/grpc', te: 'trailers' }, body);
    expect(r.headers[':status']).toBe(200);
    expect(r.headers['content-type']).toBe('application/grpc');
    expect(r.headers['grpc-status']).toBe('12');
    expect(r.headers['grpc-message']).toBe('404 Route Not Found');
    expect(r.endStreamOnHead).toBe(true);
    expect(r.body.length).toBe(0);
    const plus = await raw({ ':path': '/nowhere.Service/Call', 'content-type': 'application/grpc+proto' }, body);
    expect(plus.headers['grpc-status']).toBe('12');
  });

  test('gRPC-Web and plain HTTP requests keep the HTTP answer', async () => {
    const web = await raw({ ':path': '/nowhere.Service/Call', 'content-type': 'application/grpc-web' }, Buffer.alloc(5));
    expect(web.headers[':status']).toBe(404);
    expect(web.headers['grpc-status']).toBeUndefined();
    expect(web.body.toString()).toBe('{"error_msg":"404 Route Not Found"}\n');
    const json = await raw({ ':path': '/nowhere', 'content-type': 'application/json' }, Buffer.from('{}'));
    expect(json.headers[':status']).toBe(404);
  });
});
