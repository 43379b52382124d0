// The official `grpc-web` client runtime (Google's, closure-compiled) in Node over `xhr2`, in its default text
// mode (application/grpc-web-text: base64 both ways, the gateway's response written as one padded base64
// segment per chunk, as APISIX does) and in binary mode, through the grpc-web plugin to the real @grpc/grpc-js
// upstream. Messages are (de)serialized with protobufjs from the same .proto; no generated code.
//
// `grpc-web` and `xhr2` are devDependencies (CommonJS, loaded with createRequire); a missing one fails the
// suite at load: it never skips.
import { createRequire } from 'node:module';
import type protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { EchoReplyType, EchoRequestType, StreamRequestType, startGrpcUpstream, type GrpcUpstream } from '../helpers/grpc.ts';

const req = createRequire(import.meta.url);
const mods = { grpcWeb: req('grpc-web'), xhr2: req('xhr2') };
let gw: TestGateway;
let up: GrpcUpstream;

beforeAll(async () => {
  // The runtime looks XMLHttpRequest up globally, as in a browser.
  (globalThis as any).XMLHttpRequest = mods.xhr2;
  up = await startGrpcUpstream();
  gw = await startTestGateway();
  await gw.put('/routes/web', { uri: '/grpc/web/*', upstream: { scheme: 'grpc', nodes: { [up.addr]: 1 } }, plugins: { 'grpc-web': {} } });
});

afterAll(async () => {
  await gw?.close();
  await up?.close();
  delete (globalThis as any).XMLHttpRequest;
});

function descriptor(name: string, type: 'unary' | 'server_streaming', reqType: protobuf.Type): any {
  const g = mods.grpcWeb;
  return new g.MethodDescriptor(
    `/swytest.Echo/${name}`,
    type,
    Object,
    Object,
    (r: Record<string, unknown>) => reqType.encode(reqType.fromObject(r)).finish(),
    (bytes: Uint8Array) => EchoReplyType.toObject(EchoReplyType.decode(bytes), { defaults: true }),
  );
}

/** rpcCall with a callback (the closure-compiled build keeps rpcCall's name, not thenableCall's). */
function unaryCall(client: any, url: string, req: Record<string, unknown>): Promise<any> {
  return new Promise((resolve, reject) => {
    client.rpcCall(url, req, {}, descriptor('Unary', 'unary', EchoRequestType), (err: any, reply: any) => (err ? reject(err) : resolve(reply)));
  });
}

describe('official grpc-web client (xhr2)', () => {
  describe.each(['text', 'binary'])('format %s', (format) => {
    const client = (): any => new mods.grpcWeb.GrpcWebClientBase({ format });
    const base = (): string => `${gw.url}/grpc/web`;

    test('unary', async () => {
      const reply = await unaryCall(client(), `${base()}/swytest.Echo/Unary`, { text: 'official' });
      expect(reply.text).toBe('official');
    });

    test('server streaming: all messages (one padded base64 segment each in text mode), then status 0', async () => {
      const stream = client().serverStreaming(`${base()}/swytest.Echo/ServerStream`, { text: 'w', count: 4, interval_ms: 10 }, {}, descriptor('ServerStream', 'server_streaming', StreamRequestType));
      const texts: string[] = [];
      const status = await new Promise<any>((resolve, reject) => {
        stream.on('data', (m: any) => texts.push(m.text));
        stream.on('status', resolve);
        stream.on('error', reject);
      });
      expect(texts).toEqual(['w-0', 'w-1', 'w-2', 'w-3']);
      expect(status.code).toBe(0);
    });

    test('an upstream error arrives as RpcError with code and message', async () => {
      const err = await unaryCall(client(), `${base()}/swytest.Echo/Unary`, { text: 'x', fail_code: 9, fail_message: 'precondition' }).catch((e: any) => e);
      expect(err.code).toBe(9);
      expect(decodeURIComponent(err.message)).toBe('precondition');
    });
  });
});
