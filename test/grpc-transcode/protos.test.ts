// The protos grpc-transcode reads: binary descriptor sets made by Google's protoc (an independent compiler;
// Debian protobuf-compiler), the compile cache, what happens when a proto changes under a route, and imports
// between stored protos (`import "<id>.proto"`).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileProto, fetchProto, type ProtoSource } from '../../src/plugin/protos.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { tempDir } from '../helpers/proc.ts';
import { PROTO_FILE, startGreeter, type GreeterServer } from './server.ts';

/** `protoc --include_imports --descriptor_set_out` of the fixture, base64 (what APISIX's docs tell users). */
async function descriptorSetB64(): Promise<string> {
  const { dir, cleanup } = await tempDir('swy-protoc-');
  try {
    const out = path.join(dir, 'transcode.pb');
    execFileSync('protoc', ['--include_imports', `--descriptor_set_out=${out}`, `-I${path.dirname(PROTO_FILE)}`, '-I/usr/include', path.basename(PROTO_FILE)]);
    return readFileSync(out).toString('base64');
  } finally {
    await cleanup();
  }
}

describe('grpc-transcode protos', () => {
  let gw: TestGateway;
  let up: GreeterServer;
  let upstream: Record<string, unknown>;

  beforeAll(async () => {
    [gw, up] = await Promise.all([startTestGateway(), startGreeter()]);
    upstream = { scheme: 'grpc', type: 'roundrobin', nodes: { [up.addr]: 1 } };
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  it('compiles a protoc descriptor set (with the imported well-known types) the same as the source text', async () => {
    const b64 = await descriptorSetB64();
    const fromSet = compileProto(b64);
    const fromText = compileProto(readFileSync(PROTO_FILE, 'utf8'));
    expect(fromSet.ok && fromText.ok).toBe(true);
    if (!fromSet.ok || !fromText.ok) return;
    const a = fromSet.proto.method('helloworld.Greeter', 'Echo')!;
    const b = fromText.proto.method('helloworld.Greeter', 'Echo')!;
    const shape = (t: protobuf.Type) => t.fieldsArray.map((f) => [f.name, f.id, f.resolvedType?.fullName ?? f.type, f.repeated, f.map, f.partOf?.name]);
    expect(shape(a.resolvedRequestType!)).toEqual(shape(b.resolvedRequestType!));
    expect(fromSet.proto.type('google.protobuf.Timestamp')).toBeDefined();
    expect(compileProto('bm90IGEgZGVzY3JpcHRvcg==').ok).toBe(false);
  });

  it('serves a route from a base64 descriptor set stored through the Admin API', async () => {
    await gw.put('/protos/pb', { content: await descriptorSetB64() });
    await gw.put('/routes/pb', {
      uri: '/pb',
      plugins: { 'grpc-transcode': { proto_id: 'pb', service: 'helloworld.Greeter', method: 'SayHello' } },
      upstream,
    });
    const r = await fetch(`${gw.url}/pb`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"set","person":{"name":"P","age":2}}' });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ message: 'Hello set, name: P, age: 2', items: [], gender: 'GENDER_UNKNOWN' });
  });

  it('compiles each stored version once', () => {
    const v1 = { item: {}, value: { content: 'syntax = "proto3"; package p; message A { string a = 1; }' } };
    let current = v1;
    const source: ProtoSource = { get: (_k, id) => (id === 'x' ? current : undefined) };
    const first = fetchProto(source, 'x');
    expect(fetchProto(source, 'x')).toBe(first);
    current = { item: {}, value: { content: 'syntax = "proto3"; package p; message A { int32 a = 1; }' } };
    const second = fetchProto(source, 'x');
    expect(second).not.toBe(first);
    expect(second.ok && second.proto.type('p.A')!.fields.a!.type).toBe('int32');
    expect(fetchProto(source, 'y')).toEqual({ ok: false, error: 'failed to find proto by id: y' });
  });

  it('a route built after a proto update uses the new version', async () => {
    const v1 = 'syntax = "proto3"; package helloworld; service Greeter { rpc SayHello (HelloRequest) returns (R1) {} } message HelloRequest { string name = 1; } message R1 { string message = 1; }';
    const v2 = 'syntax = "proto3"; package helloworld; service Greeter { rpc SayHello (HelloRequest) returns (R2) {} } message HelloRequest { string name = 1; } message R2 { string message = 1; repeated string items = 2; }';
    await gw.put('/protos/upd', { content: v1 });
    const conf = { uri: '/upd', plugins: { 'grpc-transcode': { proto_id: 'upd', service: 'helloworld.Greeter', method: 'SayHello' } }, upstream };
    await gw.put('/routes/upd', conf);
    expect(await (await fetch(`${gw.url}/upd?name=a`)).json()).toEqual({ message: 'Hello a' });
    await gw.put('/protos/upd', { content: v2 });
    await gw.put('/routes/upd', { ...conf, desc: 'touched' });
    expect(await (await fetch(`${gw.url}/upd?name=a`)).json()).toEqual({ message: 'Hello a', items: [] });
  });

  // Regression: the runtime kept an unchanged route's chain across a proto update (APISIX looks the proto up
  // per request); grpc-transcode chains are now rebuilt when protos change.
  it('an unchanged route follows a proto update', async () => {
    const v1 = 'syntax = "proto3"; package helloworld; service Greeter { rpc SayHello (HelloRequest) returns (R1) {} } message HelloRequest { string name = 1; } message R1 { string message = 1; }';
    const v2 = 'syntax = "proto3"; package helloworld; service Greeter { rpc SayHello (HelloRequest) returns (R2) {} } message HelloRequest { string name = 1; } message R2 { string message = 1; repeated string items = 2; }';
    await gw.put('/protos/live', { content: v1 });
    await gw.put('/routes/live', { uri: '/live', plugins: { 'grpc-transcode': { proto_id: 'live', service: 'helloworld.Greeter', method: 'SayHello' } }, upstream });
    expect(await (await fetch(`${gw.url}/live?name=a`)).json()).toEqual({ message: 'Hello a' });
    await gw.put('/protos/live', { content: v2 });
    expect(await (await fetch(`${gw.url}/live?name=a`)).json()).toEqual({ message: 'Hello a', items: [] });
  });

  // Imports between stored text protos (beyond APISIX): `import "<id>.proto"` names the proto object `id`.
  it('a proto imports another stored proto by id; an update of the imported one reaches the route', async () => {
    const shared = (field: string) => `syntax = "proto3"; package shared; message Person { string ${field} = 1; int32 age = 2; }`;
    const main =
      'syntax = "proto3"; package helloworld; import "shared.proto"; service Greeter { rpc SayHello (HelloRequest) returns (HelloReply) {} } ' +
      'message HelloRequest { string name = 1; shared.Person person = 4; } message HelloReply { string message = 1; }';
    // Stored before what it imports: the route cannot transcode yet (503), and can once the import exists.
    await gw.put('/protos/main', { content: main });
    await gw.put('/routes/imp', { uri: '/imp', plugins: { 'grpc-transcode': { proto_id: 'main', service: 'helloworld.Greeter', method: 'SayHello' } }, upstream });
    const early = await fetch(`${gw.url}/imp?name=a`);
    expect(early.status).toBe(503);
    await early.arrayBuffer();
    await gw.put('/protos/shared', { content: shared('name') });
    expect(await (await fetch(`${gw.url}/imp?name=a&person.name=Joe&person.age=3`)).json()).toEqual({ message: 'Hello a, name: Joe, age: 3' });
    expect(up.seen.at(-1)!.request).toEqual({ name: 'a', person: { name: 'Joe', age: 3 } });
    // Field 1 of shared.Person renamed: the importer is recompiled and reads the new name.
    await gw.put('/protos/shared', { content: shared('nick') });
    expect(await (await fetch(`${gw.url}/imp?name=a&person.nick=Ann&person.name=ignored`)).json()).toEqual({ message: 'Hello a, name: Ann' });
  });

  it('import resolution: transitive imports, cycles loaded once, a missing import is the compile error', () => {
    const items: Record<string, { item: object; value: { content: string } }> = {
      a: { item: {}, value: { content: 'syntax = "proto3"; package p; import "b.proto"; message A { p.B b = 1; }' } },
      b: { item: {}, value: { content: 'syntax = "proto3"; package p; import "c.proto"; import "a.proto"; message B { p.C c = 1; }' } },
      c: { item: {}, value: { content: 'syntax = "proto3"; package p; import "google/protobuf/duration.proto"; message C { google.protobuf.Duration d = 1; }' } },
      bad: { item: {}, value: { content: 'syntax = "proto3"; package q; import "nope.proto"; message X { string x = 1; }' } },
    };
    const source: ProtoSource = { get: (_k, id) => items[id] };
    const a = fetchProto(source, 'a');
    expect(a.ok && a.proto.type('p.A')!.fields.b!.resolvedType!.fullName).toBe('.p.B');
    expect(a.ok && a.proto.type('p.C')!.fields.d!.resolvedType!.fullName).toBe('.google.protobuf.Duration');
    // Cached while nothing it imported changed; a new version of a transitive import recompiles it.
    expect(fetchProto(source, 'a')).toBe(a);
    items.c = { item: {}, value: { content: 'syntax = "proto3"; package p; message C { int64 n = 1; }' } };
    const a2 = fetchProto(source, 'a');
    expect(a2).not.toBe(a);
    expect(a2.ok && a2.proto.type('p.C')!.fields.n!.type).toBe('int64');
    const bad = fetchProto(source, 'bad');
    expect(bad).toEqual({ ok: false, error: 'import "nope.proto" not found: stored protos are imported as "<proto id>.proto"' });
    items.nope = { item: {}, value: { content: 'syntax = "proto3"; package q;' } };
    expect(fetchProto(source, 'bad').ok).toBe(true);
  });
});
