// gRPC-Web and gRPC through the gateway with a third-party client: @connectrpc/connect-node's gRPC-Web
// transport (binary, HTTP/1.1 and h2c) against the grpc-web plugin, and its gRPC transport (h2c) against the
// plain gRPC proxy, the upstream being the real @grpc/grpc-js server. Service descriptors come from protoc
// (a FileDescriptorSet of test/grpc/fixtures/echo.proto), so no generated code is checked in.
//
// @connectrpc/connect, @connectrpc/connect-node and @bufbuild/protobuf are devDependencies (CommonJS builds
// loaded with createRequire); a missing one fails the suite at load: it never skips.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { ECHO_PROTO, startGrpcUpstream, type GrpcUpstream } from '../helpers/grpc.ts';
import { tempDir } from '../helpers/proc.ts';

const run = promisify(execFile);

const req = createRequire(import.meta.url);
const clients = {
  connect: req('@connectrpc/connect'),
  node: req('@connectrpc/connect-node'),
  protobuf: req('@bufbuild/protobuf'),
  wkt: req('@bufbuild/protobuf/wkt'),
};

let gw: TestGateway;
let up: GrpcUpstream;
let Echo: any;

beforeAll(async () => {
  const { dir, cleanup } = await tempDir('swy-connect-');
  const out = path.join(dir, 'echo.pb');
  await run('protoc', ['-I', path.dirname(ECHO_PROTO), '--include_imports', `--descriptor_set_out=${out}`, path.basename(ECHO_PROTO)]);
  const bytes = await readFile(out);
  await cleanup();
  const set = clients.protobuf.fromBinary(clients.wkt.FileDescriptorSetSchema, new Uint8Array(bytes));
  Echo = clients.protobuf.createFileRegistry(set).getService('swytest.Echo');
  up = await startGrpcUpstream();
  gw = await startTestGateway();
  const upstream = { scheme: 'grpc', nodes: { [up.addr]: 1 } };
  await gw.put('/routes/web', { uri: '/grpc/web/*', upstream, plugins: { 'grpc-web': {} } });
  await gw.put('/routes/web-auth', { uri: '/auth/web/*', upstream, plugins: { 'grpc-web': {}, 'key-auth': {} } });
  await gw.put('/routes/grpc', { uri: '/swytest.Echo/*', upstream });
});

afterAll(async () => {
  await gw?.close();
  await up?.close();
});

describe('@connectrpc/connect-node through the gateway', () => {
  const C = (): any => clients;

  describe.each(['1.1', '2'] as const)('gRPC-Web transport, HTTP/%s', (httpVersion) => {
    const client = (prefix = '/grpc/web'): any =>
      C().connect.createClient(Echo, C().node.createGrpcWebTransport({ baseUrl: `${gw.url}${prefix}`, httpVersion }));

    test('unary, with the upstream trailers readable', async () => {
      let trailer: Headers | undefined;
      const reply = await client().unary({ text: 'hello' }, { onTrailer: (t: Headers) => (trailer = t) });
      expect(reply.text).toBe('hello');
      expect(trailer?.get('x-trailer')).toBe('unary');
    });

    test('server streaming', async () => {
      const texts: string[] = [];
      for await (const m of client().serverStream({ text: 's', count: 5, intervalMs: 10 })) texts.push(m.text);
      expect(texts).toEqual(['s-0', 's-1', 's-2', 's-3', 's-4']);
    });

    test('an upstream error status and message', async () => {
      const err = await client()
        .unary({ text: 'x', failCode: 5, failMessage: 'no such thing' })
        .catch((e: unknown) => C().connect.ConnectError.from(e));
      expect(err.code).toBe(C().connect.Code.NotFound);
      expect(err.rawMessage).toBe('no such thing');
    });

    test('a gateway rejection before the plugin ran (key-auth 401) reads as Unauthenticated', async () => {
      const err = await client('/auth/web')
        .unary({ text: 'x' })
        .catch((e: unknown) => C().connect.ConnectError.from(e));
      expect(err.code).toBe(C().connect.Code.Unauthenticated);
    });
  });

  describe('gRPC transport (h2c) on the plain proxy', () => {
    const client = (): any => C().connect.createClient(Echo, C().node.createGrpcTransport({ baseUrl: gw.url }));

    test('unary, server, client and bidi streaming', async () => {
      expect((await client().unary({ text: 'hi' })).text).toBe('hi');
      const texts: string[] = [];
      for await (const m of client().serverStream({ text: 'g', count: 3 })) texts.push(m.text);
      expect(texts).toEqual(['g-0', 'g-1', 'g-2']);
      async function* reqs(): AsyncGenerator<{ text: string }> {
        yield { text: 'a' };
        yield { text: 'b' };
      }
      expect((await client().clientStream(reqs())).text).toBe('a+b');
      const echoed: string[] = [];
      for await (const m of client().bidi(reqs())) echoed.push(m.text);
      expect(echoed).toEqual(['echo:a', 'echo:b']);
    });

    test('a gateway-local error (no route) is a gRPC status', async () => {
      const t = C().node.createGrpcTransport({ baseUrl: `${gw.url}/nowhere` });
      const err = await C()
        .connect.createClient(Echo, t)
        .unary({ text: 'x' })
        .catch((e: unknown) => C().connect.ConnectError.from(e));
      expect(err.code).toBe(C().connect.Code.Unimplemented);
      expect(err.rawMessage).toBe('404 Route Not Found');
    });
  });
});
