// L4 Dubbo proxy (xRPC "dubbo") end to end through the stream listeners: real providers on hessian.js,
// a raw consumer on hessian.js. Balancing, subordinate routing by service, method and version, heartbeats answered by the
// gateway, request ids rewritten over shared provider connections, a provider killed mid-call, garbage,
// truncated and oversized frames (only that connection closes), byte-at-a-time delivery and 1,000
// interleaved calls on one connection.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setup } from '../../protocols/dubbo/index.ts';
import { xrpcProtocols } from '../../stream-routes/xrpc.ts';
import { connectDubboClient, startDubboProvider, type DubboProvider } from '../helpers/dubbo-provider.ts';
import { freePort } from '../helpers/ports.ts';
import { item, startProxy, type TestProxy } from '../stream/fixtures.ts';

if (xrpcProtocols.get('dubbo') === undefined) setup(xrpcProtocols);

const SVC = 'org.apache.dubbo.backend.DemoService';
const OTHER = 'org.demo.Other';
const ports: Record<string, number> = {};
const providers: Record<string, DubboProvider> = {};
let proxy: TestProxy;
let echo: net.Server;

function demo(name: string) {
  return {
    [SVC]: {
      hello: ([n]: unknown[]) => ({ $class: 'java.util.HashMap', $: { body: `hello ${String(n)}`, from: name } }),
      echo: ([v]: unknown[]) => v,
      whoami: () => name,
      where: () => name,
      nothing: () => null,
      delayed: async ([v, ms]: unknown[]) => {
        await new Promise((r) => setTimeout(r, Number(ms)));
        return v;
      },
      hang: () => new Promise(() => undefined),
    },
  };
}

const node = (p: DubboProvider) => ({ host: '127.0.0.1', port: p.port, weight: 1 });

beforeAll(async () => {
  providers.a = await startDubboProvider(demo('a'), 'a');
  providers.b = await startDubboProvider(demo('b'), 'b');
  providers.other = await startDubboProvider({ [OTHER]: { who: () => 'other' } }, 'other');
  providers.victim = await startDubboProvider(demo('victim'), 'victim');
  providers.byMethod = await startDubboProvider(demo('by-method'), 'by-method');
  providers.byVersion = await startDubboProvider(demo('by-version'), 'by-version');
  echo = net.createServer((c) => c.pipe(c));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  for (const k of ['main', 'small', 'failover', 'plain']) ports[k] = await freePort();
  proxy = await startProxy({
    items: [
      item('stream_routes', 'main', {
        server_port: ports.main!,
        protocol: { name: 'dubbo' },
        upstream: { type: 'roundrobin', nodes: [node(providers.a), node(providers.b)] },
      }),
      item('stream_routes', 'main-other', {
        protocol: { name: 'dubbo', superior_id: 'main', conf: { service_name: OTHER } },
        upstream: { type: 'roundrobin', nodes: [node(providers.other)] },
      }),
      // Storage order: the method rule is tried before the version rule.
      item('stream_routes', 'main-method', {
        protocol: { name: 'dubbo', superior_id: 'main', conf: { service_name: SVC, method: 'where' } },
        upstream: { type: 'roundrobin', nodes: [node(providers.byMethod)] },
      }),
      item('stream_routes', 'main-version', {
        protocol: { name: 'dubbo', superior_id: 'main', conf: { service_name: SVC, service_version: '2.0.0' } },
        upstream: { type: 'roundrobin', nodes: [node(providers.byVersion)] },
      }),
      item('stream_routes', 'small', {
        server_port: ports.small!,
        protocol: { name: 'dubbo', conf: { max_frame_size: 1024, timeout: 0.3 } },
        upstream: { type: 'roundrobin', nodes: [node(providers.a)] },
      }),
      item('stream_routes', 'failover', {
        server_port: ports.failover!,
        protocol: { name: 'dubbo' },
        upstream: { type: 'roundrobin', nodes: [{ ...node(providers.victim), priority: 1 }, node(providers.b)] },
      }),
      // A protocol no handler is registered for keeps the plain TCP proxy.
      item('stream_routes', 'plain', {
        server_port: ports.plain!,
        protocol: { name: 'redis' },
        upstream: { type: 'roundrobin', nodes: [{ host: '127.0.0.1', port: (echo.address() as net.AddressInfo).port, weight: 1 }] },
      }),
    ],
    tcp: Object.values(ports).map((p) => ({ addr: `127.0.0.1:${p}`, tls: false })),
  });
});

afterAll(async () => {
  await proxy?.close();
  for (const p of Object.values(providers)) await p.kill();
  echo?.close();
});

describe('L4 dubbo proxy', () => {
  it('proxies values, nulls, exceptions and unknown services', async () => {
    const c = await connectDubboClient(ports.main!);
    const v = await c.call(7n, SVC, 'hello', ['zhangsan'], { version: '1.0.0' });
    expect(v).toMatchObject({ flags: 0x02, status: 20, id: 7n });
    expect(v.values[0]).toBe(4);
    expect(v.values[1]).toMatchObject({ body: 'hello zhangsan' });
    expect((await c.call(8n, SVC, 'nothing')).values[0]).toBe(5);
    const ex = await c.call(9n, SVC, 'nope');
    expect(ex.values[0]).toBe(3);
    expect(String((ex.values[1] as Error).message)).toMatch(/no method nope/);
    const ns = await c.call(10n, 'x.Unknown', 'm');
    expect(ns.status).toBe(60);
    expect(ns.values[0]).toMatch(/service x.Unknown not found/);
    c.socket.destroy();
  });

  it('balances calls over the upstream nodes and routes a service to its subordinate route', async () => {
    const c = await connectDubboClient(ports.main!);
    const who = await Promise.all(Array.from({ length: 20 }, (_, i) => c.call(BigInt(100 + i), SVC, 'whoami')));
    const counts = { a: 0, b: 0 } as Record<string, number>;
    for (const r of who) counts[r.values[1] as string]!++;
    expect(counts.a).toBe(10);
    expect(counts.b).toBe(10);
    const other = await c.call(200n, OTHER, 'who');
    expect(other.values[1]).toBe('other');
    c.socket.destroy();
  });

  it('routes a call to the subordinate whose method or service_version matches, in storage order', async () => {
    const c = await connectDubboClient(ports.main!);
    const who = async (id: bigint, method: string, version?: string) => (await c.call(id, SVC, method, [], version ? { version } : {})).values[1];
    expect(await who(300n, 'where')).toBe('by-method');
    expect(await who(301n, 'where', '1.0.0')).toBe('by-method');
    expect(await who(302n, 'whoami', '2.0.0')).toBe('by-version');
    expect(await who(303n, 'where', '2.0.0')).toBe('by-method');
    // Neither rule: the superior's upstream.
    const rest = [await who(304n, 'whoami', '1.0.0'), await who(305n, 'whoami', '2.0.1'), await who(306n, 'whoami')];
    for (const r of rest) expect(['a', 'b']).toContain(r);
    expect(providers.byVersion!.calls.get(`${SVC}#whoami`)).toBe(1);
    expect(providers.byMethod!.calls.get(`${SVC}#where`)).toBe(3);
    c.socket.destroy();
  });

  it('answers heartbeats itself', async () => {
    const c = await connectDubboClient(ports.main!);
    const before = providers.a!.heartbeats + providers.b!.heartbeats;
    const hb = Buffer.from('dabbe2000000000000000034000000014e', 'hex');
    c.socket.write(hb);
    const r = await c.waitReply(0x34n);
    expect(r).toMatchObject({ flags: 0x22, status: 20 });
    expect(r.values[0]).toBe(null);
    expect(providers.a!.heartbeats + providers.b!.heartbeats).toBe(before);
    c.socket.destroy();
  });

  it('keeps request ids apart when clients reuse the same ids over shared provider connections', async () => {
    const clients = await Promise.all([0, 1, 2, 3].map(() => connectDubboClient(ports.main!)));
    const all = await Promise.all(clients.flatMap((c, ci) => [1n, 2n, 3n].map((id) => c.call(id, SVC, 'delayed', [`c${ci}-${id}`, 20 - Number(id) * 5]))));
    all.forEach((r, i) => expect(r.values[1]).toBe(`c${Math.floor(i / 3)}-${(i % 3) + 1}`));
    for (const c of clients) c.socket.destroy();
  });

  it('carries 1,000 interleaved calls on one connection', async () => {
    const c = await connectDubboClient(ports.main!);
    const n = 1000;
    const frames = Array.from({ length: n }, (_, i) => c.frame(BigInt(5000 + i), SVC, 'delayed', [`v${i}`, (i * 7) % 13]));
    c.socket.write(Buffer.concat(frames));
    const replies = await Promise.all(Array.from({ length: n }, (_, i) => c.waitReply(BigInt(5000 + i), 10_000)));
    replies.forEach((r, i) => expect(r.values[1]).toBe(`v${i}`));
    c.socket.destroy();
  });

  it('accepts a request delivered one byte at a time', async () => {
    const c = await connectDubboClient(ports.main!);
    const f = c.frame(42n, SVC, 'echo', ['slowly']);
    for (const b of f) {
      c.socket.write(Buffer.from([b]));
      await new Promise((r) => setImmediate(r));
    }
    expect((await c.waitReply(42n)).values[1]).toBe('slowly');
    c.socket.destroy();
  });

  it('closes only the connection that sends garbage, a truncated header or an oversized frame', async () => {
    const good = await connectDubboClient(ports.main!);
    expect((await good.call(1n, SVC, 'echo', ['before'])).values[1]).toBe('before');
    const garbage = await connectDubboClient(ports.main!);
    garbage.socket.write('GET / HTTP/1.1\r\n\r\n');
    await garbage.closed;
    const huge = await connectDubboClient(ports.main!);
    huge.socket.write(Buffer.from('dabbc2000000000000000001800000000000', 'hex'));
    await huge.closed;
    const truncated = await connectDubboClient(ports.main!);
    truncated.socket.end(Buffer.from('dabbc20000', 'hex'));
    await truncated.closed;
    expect((await good.call(2n, SVC, 'echo', ['after'])).values[1]).toBe('after');
    good.socket.destroy();
  });

  it('applies the route conf: frame bound and per-call timeout', async () => {
    const c = await connectDubboClient(ports.small!);
    const t = await c.call(1n, SVC, 'hang');
    expect(t.status).toBe(31);
    expect(t.values[0]).toMatch(/timed out/);
    expect((await c.call(2n, SVC, 'echo', ['small'])).values[1]).toBe('small');
    c.socket.write(c.frame(3n, SVC, 'echo', ['x'.repeat(2000)]));
    await c.closed;
  });

  it('fails the calls of a provider killed mid-call and fails over for new calls', async () => {
    const c = await connectDubboClient(ports.failover!);
    expect((await c.call(1n, SVC, 'whoami')).values[1]).toBe('victim');
    const hanging = c.call(2n, SVC, 'hang');
    const bystander = await connectDubboClient(ports.main!);
    await new Promise((r) => setTimeout(r, 50));
    await providers.victim!.kill();
    const failed = await hanging;
    expect(failed.status).toBe(80);
    expect(failed.values[0]).toMatch(/closed the connection/);
    // Same client connection: the dead node is skipped (connect refused, re-picked on the other node).
    const again = await c.call(3n, SVC, 'whoami');
    expect(again.values[1]).toBe('b');
    expect((await bystander.call(4n, SVC, 'echo', ['ok'])).values[1]).toBe('ok');
    c.socket.destroy();
    bystander.socket.destroy();
  });

  it('leaves routes of unregistered xRPC protocols on the plain TCP proxy', async () => {
    const c = net.connect({ host: '127.0.0.1', port: ports.plain! });
    c.end('PING\r\n');
    const chunks: Buffer[] = [];
    for await (const d of c) chunks.push(d as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('PING\r\n');
  });
});
