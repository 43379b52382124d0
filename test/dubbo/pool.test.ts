// The provider pool and callDubbo against real providers (test/helpers/dubbo-provider.ts): values, null,
// exceptions, status errors, multiplexing, per-call timeouts, bounded pending calls, a provider killed with
// calls in flight, heartbeats and idle eviction.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Status } from '../../protocols/dubbo/codec.ts';
import { DubboPool, callDubbo } from '../../protocols/dubbo/pool.ts';
import { startDubboProvider, type DubboProvider } from '../helpers/dubbo-provider.ts';
import { freePort } from '../helpers/ports.ts';

const SVC = 'org.apache.dubbo.backend.DemoService';
let provider: DubboProvider;
const pools: DubboPool[] = [];
const never: Array<() => void> = [];

function pool(port: number, opts: Partial<ConstructorParameters<typeof DubboPool>[0]> = {}): DubboPool {
  const p = new DubboPool({ host: '127.0.0.1', port, ...opts });
  pools.push(p);
  return p;
}

const call = (p: DubboPool, method: string, args: unknown[] = [], timeoutMs = 5_000) =>
  callDubbo(p, { service: SVC, version: '1.0.0', method, paramTypes: 'Ljava/lang/Object;'.repeat(args.length), args, timeoutMs });

beforeAll(async () => {
  provider = await startDubboProvider({
    [SVC]: {
      hello: ([name]) => ({ $class: 'java.util.HashMap', $: { body: `hello ${String(name)}`, status: '200' } }),
      echo: ([v]) => v,
      nothing: () => null,
      fail: () => {
        throw new Error('dubbo fail');
      },
      hang: () => new Promise<void>((resolve) => never.push(resolve)),
      slow: async ([ms]) => {
        await new Promise((r) => setTimeout(r, Number(ms)));
        return `slept ${String(ms)}`;
      },
    },
  });
});

afterAll(async () => {
  for (const p of pools) p.close();
  for (const r of never) r();
  await provider.kill();
});

describe('callDubbo', () => {
  it('returns values, null, exceptions and status errors as values', async () => {
    const p = pool(provider.port);
    const v = await call(p, 'hello', ['zhangsan']);
    expect(v).toMatchObject({ ok: true, kind: 'value', value: { body: 'hello zhangsan', status: '200' } });
    expect(v.ok && v.attachments).toMatchObject({ dubbo: '2.0.2' });
    expect(await call(p, 'nothing')).toMatchObject({ ok: true, kind: 'null' });
    const ex = await call(p, 'fail');
    expect(ex).toMatchObject({ ok: false, kind: 'exception', exception: { className: 'java.lang.IllegalStateException', message: 'dubbo fail' } });
    const nm = await call(p, 'nope');
    expect(nm).toMatchObject({ ok: false, kind: 'exception', exception: { className: 'java.lang.NoSuchMethodException' } });
    const ns = await callDubbo(p, { service: 'x.Missing', method: 'm', paramTypes: '', args: [], timeoutMs: 2_000 });
    expect(ns).toMatchObject({ ok: false, kind: 'status', status: Status.SERVICE_NOT_FOUND });
    expect(ns.ok === false && ns.kind === 'status' && ns.message).toContain('x.Missing');
  });

  it('multiplexes many calls over few connections and maps every reply to its call', async () => {
    const p = pool(provider.port, { multiplex: 64, maxConnections: 2 });
    const n = 500;
    const results = await Promise.all(Array.from({ length: n }, (_, i) => call(p, 'echo', [`v${i}`])));
    results.forEach((r, i) => expect(r).toMatchObject({ ok: true, value: `v${i}` }));
    expect(p.connections).toBeLessThanOrEqual(2);
    expect(p.inFlight).toBe(0);
  });

  it('times out one call without disturbing the others on the same connection', async () => {
    const p = pool(provider.port, { maxConnections: 1 });
    const [hung, ok] = await Promise.all([call(p, 'hang', [], 150), call(p, 'echo', ['fine'])]);
    expect(hung).toMatchObject({ ok: false, kind: 'transport', code: 'timeout' });
    expect(ok).toMatchObject({ ok: true, value: 'fine' });
    expect(p.connections).toBe(1);
  });

  it('bounds the calls in flight', async () => {
    const p = pool(provider.port, { maxPending: 3, maxConnections: 1 });
    const running = [0, 1, 2].map(() => call(p, 'slow', [100]));
    const rejected = await call(p, 'echo', ['x']);
    expect(rejected).toMatchObject({ ok: false, kind: 'transport', code: 'overloaded' });
    for (const r of await Promise.all(running)) expect(r).toMatchObject({ ok: true, value: 'slept 100' });
    expect(await call(p, 'echo', ['after'])).toMatchObject({ ok: true, value: 'after' });
  });

  it('fails every call in flight when the provider dies, with a clear error', async () => {
    const victim = await startDubboProvider({ [SVC]: { hang: () => new Promise(() => undefined), echo: ([v]) => v } }, 'victim');
    const p = pool(victim.port, { maxConnections: 1 });
    expect(await call(p, 'echo', ['up'])).toMatchObject({ ok: true });
    const inflight = [call(p, 'hang'), call(p, 'hang'), call(p, 'hang')];
    await new Promise((r) => setTimeout(r, 50));
    await victim.kill();
    for (const r of await Promise.all(inflight)) {
      expect(r).toMatchObject({ ok: false, kind: 'transport', code: 'connection_closed' });
      expect(r.ok === false && r.kind === 'transport' && r.message).toMatch(/closed the connection \(3 calls in flight\)/);
    }
    // The other provider's pool is untouched.
    expect(await call(pool(provider.port), 'echo', ['still'])).toMatchObject({ ok: true, value: 'still' });
  });

  it('reports a refused connection as connect_failed', async () => {
    const p = pool(await freePort(), { connectTimeoutMs: 1_000 });
    expect(await call(p, 'echo', ['x'])).toMatchObject({ ok: false, kind: 'transport', code: 'connect_failed' });
  });

  it('closes the connection on a bad frame from the provider', async () => {
    const srv = net.createServer((s) => s.on('data', () => s.write(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'))));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const p = pool((srv.address() as net.AddressInfo).port);
    const r = await call(p, 'echo', ['x']);
    expect(r).toMatchObject({ ok: false, kind: 'transport', code: 'bad_frame' });
    expect(r.ok === false && r.kind === 'transport' && r.message).toMatch(/bad magic byte 0x48/);
    srv.close();
  });

  it('sends heartbeats on a quiet connection and evicts idle connections', async () => {
    const p = pool(provider.port, { heartbeatMs: 40, idleTimeoutMs: 300 });
    const before = provider.heartbeats;
    expect(await call(p, 'echo', ['x'])).toMatchObject({ ok: true });
    await new Promise((r) => setTimeout(r, 200));
    expect(provider.heartbeats).toBeGreaterThan(before);
    expect(p.connections).toBe(1);
    const deadline = Date.now() + 3_000;
    while (p.connections > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(p.connections).toBe(0);
  });
});
