// Delete protection for protos imported by other stored protos (`import "<id>.proto";`, src/plugin/protos.ts):
// the Admin API refuses to delete a proto another proto's source text imports, as it refuses one a route uses.
// Also what the data plane does when an imported proto disappears anyway (a standalone file edited by hand, an
// etcd write, ?force=true): the importer's routes fail clearly with 503 until the import is back.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/proc.ts';
import { startGreeter, type GreeterServer } from '../grpc-transcode/server.ts';

const SHARED = 'syntax = "proto3"; package shared; message Person { string name = 1; int32 age = 2; }';
const greeter = (imports: string, personType: string) =>
  `syntax = "proto3"; package helloworld; ${imports} service Greeter { rpc SayHello (HelloRequest) returns (HelloReply) {} } ` +
  `message HelloRequest { string name = 1; ${personType} person = 4; } message HelloReply { string message = 1; }`;
const IMPORTER = greeter('import "shared.proto";', 'shared.Person');
const LOCAL_PERSON = greeter('message Person { string name = 1; int32 age = 2; }', 'Person');

let up: GreeterServer;

beforeAll(async () => {
  up = await startGreeter();
});
afterAll(async () => {
  await up?.close();
});

describe('deleting an imported proto through the Admin API', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway();
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('is refused while another proto imports it, and allowed once the importer drops the import', async () => {
    await gw.put('/protos/shared', { content: SHARED });
    await gw.put('/protos/main', { content: IMPORTER });
    const refused = await gw.admin('DELETE', '/protos/shared');
    expect(refused).toEqual({ status: 400, body: { error_msg: 'can not delete this proto, proto [main] is still importing it now' } });
    expect((await gw.admin('GET', '/protos/shared')).body.value.content).toBe(SHARED);

    await gw.put('/protos/main', { content: LOCAL_PERSON });
    const allowed = await gw.admin('DELETE', '/protos/shared');
    expect(allowed.status, JSON.stringify(allowed.body)).toBe(200);
    expect((await gw.admin('GET', '/protos/shared')).status).toBe(404);
  });

  it('is allowed once the importer is deleted; public and weak imports count, commented-out ones do not', async () => {
    await gw.put('/protos/base', { content: SHARED });
    await gw.put('/protos/pub', { content: greeter('import public "base.proto";', 'shared.Person') });
    await gw.put('/protos/weak', { content: greeter('import weak "base.proto";', 'shared.Person') });
    await gw.put('/protos/note', { content: `// import "base.proto"; was here\n${LOCAL_PERSON}` });
    // A proto importing itself does not protect itself.
    await gw.put('/protos/self', { content: `import "self.proto"; ${SHARED}` });

    expect((await gw.admin('DELETE', '/protos/base')).body).toEqual({ error_msg: 'can not delete this proto, proto [pub] is still importing it now' });
    expect((await gw.admin('DELETE', '/protos/pub')).status).toBe(200);
    expect((await gw.admin('DELETE', '/protos/base')).body).toEqual({ error_msg: 'can not delete this proto, proto [weak] is still importing it now' });
    expect((await gw.admin('DELETE', '/protos/weak')).status).toBe(200);
    expect((await gw.admin('DELETE', '/protos/base')).status).toBe(200);
    expect((await gw.admin('DELETE', '/protos/self')).status).toBe(200);
  });

  it('a route using the proto is reported before an importer', async () => {
    await gw.put('/protos/both', { content: SHARED });
    await gw.put('/protos/imp2', { content: greeter('import "both.proto";', 'shared.Person') });
    await gw.put('/routes/both', {
      uri: '/both',
      plugins: { 'grpc-transcode': { proto_id: 'both', service: 'x.Y', method: 'Z' } },
      upstream: { scheme: 'grpc', type: 'roundrobin', nodes: { [up.addr]: 1 } },
    });
    expect((await gw.admin('DELETE', '/protos/both')).body).toEqual({ error_msg: 'can not delete this proto, route [both] is still using it now' });
    expect((await gw.admin('DELETE', '/routes/both')).status).toBe(200);
    expect((await gw.admin('DELETE', '/protos/both')).body).toEqual({ error_msg: 'can not delete this proto, proto [imp2] is still importing it now' });
  });

  it('?force=true deletes anyway: the importer route answers 503 until the import is back', async () => {
    await gw.put('/protos/dep', { content: SHARED });
    await gw.put('/protos/user', { content: greeter('import "dep.proto";', 'shared.Person') });
    await gw.put('/routes/user', {
      uri: '/user',
      plugins: { 'grpc-transcode': { proto_id: 'user', service: 'helloworld.Greeter', method: 'SayHello' } },
      upstream: { scheme: 'grpc', type: 'roundrobin', nodes: { [up.addr]: 1 } },
    });
    expect(await (await fetch(`${gw.url}/user?name=a&person.name=Joe&person.age=3`)).json()).toEqual({ message: 'Hello a, name: Joe, age: 3' });
    expect((await gw.admin('DELETE', '/protos/dep?force=true')).status).toBe(200);
    await gw.synced();
    const broken = await fetch(`${gw.url}/user?name=a`);
    expect(broken.status).toBe(503);
    await broken.arrayBuffer();
    await gw.put('/protos/dep', { content: SHARED });
    expect(await (await fetch(`${gw.url}/user?name=b&person.name=Ann&person.age=4`)).json()).toEqual({ message: 'Hello b, name: Ann, age: 4' });
  });
});

describe('an imported proto removed from a standalone file', () => {
  let gw: TestGateway;
  const conf = (withShared: boolean) => ({
    protos: [...(withShared ? [{ id: 'shared', content: SHARED }] : []), { id: 'main', content: IMPORTER }],
    routes: [
      {
        id: 'r',
        uri: '/r',
        plugins: { 'grpc-transcode': { proto_id: 'main', service: 'helloworld.Greeter', method: 'SayHello' } },
        upstream: { scheme: 'grpc', type: 'roundrobin', nodes: { [up.addr]: 1 } },
      },
    ],
  });
  beforeAll(async () => {
    gw = await startTestGateway({ standalone: conf(true) });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('leaves the importer route failing with 503, and serving again when the import returns', async () => {
    expect(await (await fetch(`${gw.url}/r?name=a&person.name=Joe&person.age=3`)).json()).toEqual({ message: 'Hello a, name: Joe, age: 3' });
    const file = path.join(gw.dir, 'apisix.yaml');
    await writeFile(file, stringify(conf(false)) + '#END\n');
    await waitFor(async () => {
      const r = await fetch(`${gw.url}/r?name=a`);
      await r.arrayBuffer();
      return r.status === 503;
    });
    await writeFile(file, stringify(conf(true)) + '#END\n');
    await waitFor(async () => {
      const r = await fetch(`${gw.url}/r?name=b&person.name=Ann`);
      const body = await r.text();
      return r.status === 200 && (JSON.parse(body) as { message?: string }).message === 'Hello b, name: Ann';
    });
  });
});
