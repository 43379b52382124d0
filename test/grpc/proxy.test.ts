// gRPC through the real gateway to a real @grpc/grpc-js server: upstream scheme grpc (h2c) and grpcs (TLS,
// ALPN h2); clients are @grpc/grpc-js over h2c on node_listen and over TLS on the HTTPS listener (a test CA
// made with openssl). Unary and the three streaming kinds, trailers and statuses passed through, deadlines,
// cancellation both ways.
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import {
  echoClient,
  makeTestCa,
  startGrpcUpstream,
  unary,
  type EchoClient,
  type EchoReply,
  type GrpcUpstream,
  type TestCa,
} from '../helpers/grpc.ts';

let gw: TestGateway;
let plain: GrpcUpstream;
let secure: GrpcUpstream;
let ca: TestCa;
/** An h2c server that answers the head then resets the stream (an upstream failing mid-response). */
let resetter: http2.Http2Server;
const clients: EchoClient[] = [];

function client(kind: 'h2c' | 'tls'): EchoClient {
  const c = kind === 'h2c' ? echoClient(`127.0.0.1:${gw.port}`) : echoClient(`localhost:${gw.httpsPort}`, { ca: ca.ca });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  ca = await makeTestCa();
  [plain, secure] = await Promise.all([startGrpcUpstream(), startGrpcUpstream({ tls: { key: ca.key, cert: ca.cert } })]);
  resetter = http2.createServer();
  resetter.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    stream.write(Buffer.from([0, 0, 0, 0, 2, 0x0a, 0x00]));
    setTimeout(() => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR), 50);
  });
  await new Promise<void>((r) => resetter.listen(0, '127.0.0.1', r));
  gw = await startTestGateway();
  await gw.put('/ssls/1', { cert: ca.cert, key: ca.key, snis: ['localhost'] });
  await gw.put('/routes/grpc', { uri: '/swytest.Echo/*', upstream: { scheme: 'grpc', nodes: { [plain.addr]: 1 } } });
  await gw.put('/routes/grpcs', {
    uri: '/swytest.Echo/*',
    host: 'localhost',
    upstream: { scheme: 'grpcs', pass_host: 'rewrite', upstream_host: 'localhost', nodes: { [secure.addr]: 1 } },
  });
  await gw.put('/routes/reset', {
    uri: '/swytest.Echo/*',
    vars: [['http_x_target', '==', 'reset']],
    priority: 10,
    upstream: { scheme: 'grpc', nodes: { [`127.0.0.1:${(resetter.address() as AddressInfo).port}`]: 1 } },
  });
});

afterAll(async () => {
  for (const c of clients) c.close();
  await gw?.close();
  await Promise.all([plain?.close(), secure?.close(), new Promise((r) => resetter?.close(r))]);
  await ca?.cleanup();
});

function collect<T>(call: grpc.ClientReadableStream<T>): Promise<{ messages: T[]; status: grpc.StatusObject | null; error: grpc.ServiceError | null }> {
  return new Promise((resolve) => {
    const messages: T[] = [];
    let error: grpc.ServiceError | null = null;
    call.on('data', (m: T) => messages.push(m));
    call.on('error', (e: grpc.ServiceError) => (error = e));
    call.on('status', (status: grpc.StatusObject) => setImmediate(() => resolve({ messages, status, error })));
  });
}

describe.each(['h2c', 'tls'] as const)('gRPC proxy (%s client)', (kind) => {
  test('unary: reply, request metadata forwarded, response trailers passed through', async () => {
    const c = client(kind);
    const { reply, trailers } = await unary(c, { text: 'hello', echo_headers: ['x-md', 'te', 'x-forwarded-proto'] }, { metadata: { 'x-md': 'v1' } });
    expect(reply.text).toBe('hello');
    expect(reply.headers['x-md']).toBe('v1');
    expect(reply.headers['x-forwarded-proto']).toBe(kind === 'tls' ? 'https' : 'http');
    expect(trailers.get('x-trailer')).toEqual(['unary']);
  });

  test('unary error status and message from the upstream (trailers-only) reach the client', async () => {
    const c = client(kind);
    const err = await unary(c, { fail_code: grpc.status.NOT_FOUND, fail_message: 'no such thing: ü' }).then(
      () => null,
      (e: grpc.ServiceError) => e,
    );
    expect(err?.code).toBe(grpc.status.NOT_FOUND);
    expect(err?.details).toBe('no such thing: ü');
  });

  test('server streaming: every message, then the OK status', async () => {
    const c = client(kind);
    const r = await collect<EchoReply>(c.ServerStream({ text: 's', count: 20, interval_ms: 0, pad_bytes: 100 }));
    expect(r.error).toBeNull();
    expect(r.messages.map((m) => m.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(r.status?.code).toBe(grpc.status.OK);
  });

  // 800 KB answered at once fills the client's flow-control window, so the gateway pauses the upstream
  // stream; undici (8.12 to 8.14 at least) then drops the DATA buffered while paused when the trailers
  // arrive (client-h2.js onTrailers removes the 'data' listener). scripts/patch-undici.mjs fixes it at install;
  // this test fails if the patch stops applying.
  test('server streaming faster than the client reads: no byte lost (backpressure)', async () => {
    const c = client(kind);
    const r = await collect<EchoReply>(c.ServerStream({ text: 's', count: 20, interval_ms: 0, pad_bytes: 40_000 }));
    expect(r.error).toBeNull();
    expect(r.messages.map((m) => m.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(r.messages[19]!.pad.length).toBe(40_000);
    expect(r.status?.code).toBe(grpc.status.OK);
  });

  test('server streaming that fails after some messages: messages then the error status', async () => {
    const c = client(kind);
    const r = await collect<EchoReply>(c.ServerStream({ text: 'f', count: 3, fail_code: grpc.status.DATA_LOSS }));
    expect(r.messages).toHaveLength(3);
    expect(r.error?.code).toBe(grpc.status.DATA_LOSS);
    expect(r.error?.details).toBe('stream failed');
  });

  test('client streaming', async () => {
    const c = client(kind);
    const reply = await new Promise<EchoReply>((resolve, reject) => {
      const call = c.ClientStream((err: grpc.ServiceError | null, r: EchoReply) => (err ? reject(err) : resolve(r)));
      for (const t of ['a', 'b', 'c', 'd']) call.write({ text: t });
      call.end();
    });
    expect(reply).toMatchObject({ text: 'a+b+c+d', seq: 4 });
  });

  test('bidi streaming: each reply comes back before the next request is written', async () => {
    const c = client(kind);
    const call: grpc.ClientDuplexStream<{ text: string }, EchoReply> = c.Bidi();
    const got: string[] = [];
    const next = (): Promise<EchoReply> => new Promise((resolve) => call.once('data', resolve));
    for (const t of ['one', 'two', 'three']) {
      const p = next();
      call.write({ text: t });
      got.push((await p).text);
    }
    const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.end();
    expect(got).toEqual(['echo:one', 'echo:two', 'echo:three']);
    expect((await ended).code).toBe(grpc.status.OK);
  });
});

describe('deadlines and cancellation', () => {
  test('grpc-timeout reaches the upstream; an expired deadline cancels the upstream call', async () => {
    const c = client('h2c');
    const before = plain.events.filter((e) => e === 'Unary:cancelled').length;
    const started = performance.now();
    const err = await unary(c, { text: 'slow', delay_ms: 3000 }, { deadlineMs: 300 }).then(
      () => null,
      (e: grpc.ServiceError) => e,
    );
    expect(err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(performance.now() - started).toBeLessThan(2500);
    await expect.poll(() => plain.events.filter((e) => e === 'Unary:cancelled').length, { timeout: 3000 }).toBe(before + 1);
    // The deadline itself travels as grpc-timeout.
    const { reply } = await unary(c, { text: 'x' }, { deadlineMs: 5000 });
    const left = Number(reply.headers['deadline-in-ms']);
    expect(left).toBeGreaterThan(1000);
    expect(left).toBeLessThanOrEqual(5000);
    const none = await unary(c, { text: 'y' });
    expect(none.reply.headers['deadline-in-ms']).toBeUndefined();
  });

  test('a client cancelling a server stream cancels the upstream stream', async () => {
    const c = client('tls');
    const call = c.ServerStream({ text: 'long', count: 1000, interval_ms: 20 });
    await new Promise((resolve) => call.once('data', resolve));
    call.on('error', () => undefined);
    call.cancel();
    expect(await secure.waitEvent('ServerStream:cancelled', 3000)).toBe(true);
  });

  test('churn: 150 calls of every kind at once, a third cancelled mid-flight, then the gateway still serves', async () => {
    const c = client('h2c');
    const count = (e: string): number => plain.events.filter((x) => x === e).length;
    const [cancelledBefore, doneBefore] = [count('ServerStream:cancelled'), count('ServerStream:done')];
    const jobs: Promise<string>[] = [];
    for (let i = 0; i < 150; i++) {
      const kind = i % 3;
      if (kind === 0) {
        jobs.push(unary(c, { text: `u${i}`, delay_ms: i % 20 }).then((r) => r.reply.text, (e: grpc.ServiceError) => `err${e.code}`));
      } else if (kind === 1) {
        const call = c.ServerStream({ text: `s${i}`, count: 50, interval_ms: 5 });
        jobs.push(
          new Promise((resolve) => {
            let n = 0;
            call.on('data', () => {
              if (++n === 1 + (i % 7)) call.cancel();
            });
            call.on('error', (e: grpc.ServiceError) => resolve(`err${e.code}`));
            call.on('end', () => resolve('end'));
          }),
        );
      } else {
        jobs.push(unary(c, { text: `f${i}`, fail_code: grpc.status.ABORTED, fail_message: 'x' }).then(() => 'ok', (e: grpc.ServiceError) => `err${e.code}`));
      }
    }
    const out = await Promise.all(jobs);
    out.forEach((r, i) => {
      if (i % 3 === 0) expect(r).toBe(`u${i}`);
      else if (i % 3 === 1) expect(r).toBe(`err${grpc.status.CANCELLED}`);
      else expect(r).toBe(`err${grpc.status.ABORTED}`);
    });
    // Every stream the client cancelled was cancelled upstream too; none ran to its 50th message.
    await expect.poll(() => count('ServerStream:cancelled') - cancelledBefore, { timeout: 5000 }).toBe(50);
    expect(count('ServerStream:done') - doneBefore).toBe(0);
    const { reply } = await unary(c, { text: 'after churn' });
    expect(reply.text).toBe('after churn');
  });

  test('an upstream resetting the stream mid-response gives the client a gRPC error', async () => {
    const c = client('h2c');
    const md = new grpc.Metadata();
    md.set('x-target', 'reset');
    const r = await collect<EchoReply>(c.ServerStream({ text: 'x', count: 1 }, md));
    expect(r.error).not.toBeNull();
    expect(r.error!.code).not.toBe(grpc.status.OK);
  });
});
