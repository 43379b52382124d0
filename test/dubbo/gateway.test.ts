// The Dubbo xRPC route through the whole gateway: stream route created through the Admin API, calls from a
// raw hessian.js consumer and from the reference consumer library apache-dubbo-js (`DirectlyDubbo`, a
// devDependency, so its absence fails the test; DUBBO_JS_DIR may name another directory whose node_modules holds it):
// values, exceptions and 1,000 concurrent calls over its one connection; a subordinate stream route created
// through the Admin API takes the calls of its service from then on, and gives them back when deleted.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDubboClient, startDubboProvider, type DubboProvider } from '../helpers/dubbo-provider.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';

const SVC = 'org.apache.dubbo.backend.DemoService';
// The reference consumer is a devDependency; DUBBO_JS_DIR may point at another install.
const dubboJsDir = process.env.DUBBO_JS_DIR ?? process.cwd();
const hasDubboJs = existsSync(path.join(dubboJsDir, 'node_modules/apache-dubbo-js/package.json'));

const SUB = 'org.apache.dubbo.backend.SubService';
let gw: TestGateway;
let port = 0;
const providers: DubboProvider[] = [];

beforeAll(async () => {
  for (const name of ['p1', 'p2']) {
    providers.push(
      await startDubboProvider(
        {
          [SVC]: {
            sayHello: ([n]) => `hello ${String(n)} from ${name}`,
            add: ([a, b]) => Number(a) + Number(b),
            fail: () => {
              throw new Error(`refused by ${name}`);
            },
          },
        },
        name,
      ),
    );
  }
  providers.push(await startDubboProvider({ [SUB]: { who: () => 'sub' }, [SVC]: { sayHello: ([n]) => `hello ${String(n)} from sub` } }, 'sub'));
  port = await freePort();
  gw = await startTestGateway({ config: { apisix: { proxy_mode: 'http&stream', stream_proxy: { tcp: [`127.0.0.1:${port}`] } } } });
  await gw.put('/stream_routes/dubbo', {
    server_port: port,
    protocol: { name: 'dubbo' },
    upstream: { type: 'roundrobin', nodes: providers.slice(0, 2).map((p) => ({ host: '127.0.0.1', port: p.port, weight: 1 })) },
  });
}, 20_000);

afterAll(async () => {
  await gw?.close();
  for (const p of providers) await p.kill();
});

describe('dubbo through the gateway', () => {
  it('routes calls of a raw consumer over both providers', async () => {
    const c = await connectDubboClient(port);
    const r = await Promise.all([1n, 2n, 3n, 4n].map((id) => c.call(id, SVC, 'sayHello', [`n${id}`])));
    const from = r.map((x) => String(x.values[1]).split(' from ')[1]).sort();
    expect(from).toEqual(['p1', 'p1', 'p2', 'p2']);
    c.socket.destroy();
  });

  it('routes a service to a subordinate route created through the Admin API', async () => {
    const c = await connectDubboClient(port);
    const before = await c.call(10n, SUB, 'who');
    expect(before.status).toBe(60); // the superior's providers do not have it
    const created = await gw.admin('PUT', '/stream_routes/dubbo-sub', {
      protocol: { name: 'dubbo', superior_id: 'dubbo', conf: { service_name: SUB } },
      upstream: { type: 'roundrobin', nodes: [{ host: '127.0.0.1', port: providers[2]!.port, weight: 1 }] },
    });
    expect(created.status).toBe(201);
    await gw.synced();
    // A new connection: a session keeps the routes of its accept time.
    const fresh = await connectDubboClient(port);
    expect((await fresh.call(11n, SUB, 'who')).values[1]).toBe('sub');
    // Other services stay on the superior's upstream.
    expect(String((await fresh.call(12n, SVC, 'sayHello', ['x'])).values[1])).toMatch(/from p[12]$/);
    expect((await gw.admin('DELETE', '/stream_routes/dubbo-sub')).status).toBe(200);
    await gw.synced();
    const after = await connectDubboClient(port);
    expect((await after.call(13n, SUB, 'who')).status).toBe(60);
    for (const x of [c, fresh, after]) x.socket.destroy();
  });

  it('serves the apache-dubbo-js reference consumer: values, exceptions, 1,000 concurrent calls', async () => {
    expect(hasDubboJs, `apache-dubbo-js is a devDependency: not found under ${dubboJsDir}/node_modules`).toBe(true);
    const req = createRequire(path.join(dubboJsDir, 'index.js'));
    const { DirectlyDubbo, java } = req('apache-dubbo-js');
    const dubbo = DirectlyDubbo.from({ dubboAddress: `127.0.0.1:${port}`, dubboVersion: '2.0.2', dubboInvokeTimeout: 10 });
    const svc = dubbo.proxyService({
      dubboInterface: SVC,
      version: '',
      methods: {
        sayHello: (n: string) => [java.String(n)],
        add: (a: number, b: number) => [java.int(a), java.int(b)],
        fail: () => [],
      },
    });
    const hello = await svc.sayHello('zhangsan');
    expect(hello.err).toBe(null);
    expect(hello.res).toMatch(/^hello zhangsan from p[12]$/);
    const failed = await svc.fail();
    expect(String(failed.err?.message ?? failed.err)).toMatch(/refused by p[12]/);
    const n = 1000;
    const sums = await Promise.all(Array.from({ length: n }, (_, i) => svc.add(i, 1000)));
    sums.forEach((s: { res: unknown; err: unknown }, i: number) => {
      expect(s.err).toBe(null);
      expect(s.res).toBe(i + 1000);
    });
  });
});
