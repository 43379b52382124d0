// dubbo-proxy through a running gateway against real Dubbo 2 providers written on hessian.js
// (test/helpers/dubbo-provider.ts, which shares no code with protocols/dubbo): the cases of APISIX's
// t/plugin/dubbo-proxy/route.t and upstream.t (DemoServiceImpl's hello/fail/timeout/badStatus), plus what the
// Tengine module does with bodies, non-map answers and exceptions, balancing and fail-over over two
// providers, passive and active (tcp) health, and many concurrent calls over multiplexed connections.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dubboProxyPlugin as def } from '../../src/plugin/builtin/dubbo-proxy.ts';
import { startDubboProvider, type DubboProvider, type Method } from '../helpers/dubbo-provider.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/proc.ts';
import { confError } from '../plugin/helpers.ts';

const SVC = 'org.apache.dubbo.backend.DemoService';
const map = (m: Record<string, unknown>): unknown => ({ $class: 'java.util.HashMap', $: m });
type Ctx = Record<string, unknown>;

/** DemoServiceImpl of APISIX's test backend, plus methods for the other answers, tagged with `name`. */
function demo(name: string, overrides: Record<string, Method> = {}): Record<string, Record<string, Method>> {
  return {
    [SVC]: {
      hello: ([c]) => {
        const ret: Record<string, unknown> = { body: 'dubbo success\n', status: '200', 'x-provider': name };
        for (const [k, v] of Object.entries(c as Ctx)) if (k.startsWith('extra-arg')) ret[`Got-${k}`] = v;
        return map(ret);
      },
      fail: () => map({ body: 'dubbo fail\n', status: '503' }),
      timeout: async () => {
        await new Promise((r) => setTimeout(r, 500));
        return map({ body: 'dubbo fail\n', status: '503' });
      },
      badStatus: () => map({ body: 'ok\n', status: 200 }),
      echo: ([c]) => {
        const ctx = c as Ctx;
        const body = ctx.body;
        return map({
          status: '201',
          body: Buffer.isBuffer(body) ? Buffer.concat([Buffer.from('got:'), body]) : 'no body',
          'X-Body-Type': Buffer.isBuffer(body) ? 'byte[]' : typeof body,
          'X-Header-Keys': Object.keys(ctx).filter((k) => k !== 'body').sort().join(','),
          'X-Content-Type': String(ctx['content-type']),
        });
      },
      noStatus: () => map({ body: 'no status' }),
      nothing: () => null,
      boom: () => {
        throw new Error(`refused by ${name}`);
      },
      notMap: () => 'a plain string',
      ...overrides,
    },
  };
}

let gw: TestGateway;
let control = '';
const providers: DubboProvider[] = [];

async function provider(name: string, overrides?: Record<string, Method>): Promise<DubboProvider> {
  const p = await startDubboProvider(demo(name, overrides), name);
  providers.push(p);
  return p;
}

const route = (method: string | undefined, upstream: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  plugins: { 'dubbo-proxy': { service_name: SVC, service_version: '1.0.0', ...(method ? { method } : {}) }, ...extra },
  upstream,
});

beforeAll(async () => {
  const controlPort = await freePort();
  control = `http://127.0.0.1:${controlPort}`;
  gw = await startTestGateway({
    config: {
      apisix: { enable_control: true, control: { ip: '127.0.0.1', port: controlPort } },
      plugins: ['dubbo-proxy', 'http-dubbo', 'key-auth', 'proxy-rewrite', 'response-rewrite'],
      plugin_attr: { 'dubbo-proxy': { upstream_multiplex_count: 4 } },
    },
  });
});

afterAll(async () => {
  await gw?.close();
  await Promise.all(providers.map((p) => p.kill().catch(() => undefined)));
});

describe('dubbo-proxy schema', () => {
  it('follows APISIX: service_name and service_version required, version x.y.z, method optional', () => {
    expect(confError(def, { service_name: SVC, service_version: '1.0.0', method: 'hello' })).toBeNull();
    expect(confError(def, { service_name: SVC, service_version: '1.0.0' })).toBeNull();
    expect(confError(def, { service_name: SVC, method: 'hello' })).toMatch(/service_version/);
    expect(confError(def, { service_version: '1.0.0' })).toMatch(/service_name/);
    expect(confError(def, { service_name: SVC, service_version: 'v1' })).not.toBeNull();
    expect(confError(def, { service_name: '', service_version: '1.0.0' })).not.toBeNull();
    expect(confError(def, { service_name: SVC, service_version: '1.0.0', method: '' })).not.toBeNull();
    expect(def.priority).toBe(507);
  });
});

describe('dubbo-proxy calls', () => {
  let one: DubboProvider;
  let upstream: Record<string, unknown>;

  beforeAll(async () => {
    one = await provider('one');
    upstream = { type: 'roundrobin', nodes: { [`127.0.0.1:${one.port}`]: 1 } };
    await gw.put('/routes/hello', { uri: '/hello', ...route('hello', upstream) });
    await gw.put('/routes/by-uri', { uris: ['/hello2', '/echo'], ...route(undefined, upstream) });
  });

  it('passes request headers in the Map and maps the returned Map to status, headers and body', async () => {
    const r = await fetch(`${gw.url}/hello`, { headers: { 'Extra-Arg-K': 'V' } });
    expect(r.status).toBe(200);
    expect(r.headers.get('got-extra-arg-k')).toBe('V');
    expect(r.headers.get('x-provider')).toBe('one');
    expect(await r.text()).toBe('dubbo success\n');
    expect(one.calls.get(`${SVC}#hello`)).toBeGreaterThanOrEqual(1);
  });

  it('uses the URI without its leading slash as the method when none is configured', async () => {
    const before = one.calls.get(`${SVC}#echo`) ?? 0;
    const r = await fetch(`${gw.url}/echo`, { method: 'POST', body: 'ping', headers: { 'content-type': 'text/x-test' } });
    expect(r.status).toBe(201);
    expect(await r.text()).toBe('got:ping');
    expect(r.headers.get('x-body-type')).toBe('byte[]');
    expect(r.headers.get('x-content-type')).toBe('text/x-test');
    expect(r.headers.get('x-header-keys')!.split(',')).toEqual(expect.arrayContaining(['host', 'content-type', 'content-length']));
    expect(one.calls.get(`${SVC}#echo`)).toBe(before + 1);
    const nobody = await fetch(`${gw.url}/echo`);
    expect(await nobody.text()).toBe('no body');
  });

  it('answers the status the provider returns, string or number (upstream.t TEST 2 and 4)', async () => {
    await gw.put('/routes/fail', { uri: '/fail', ...route('fail', upstream) });
    await gw.put('/routes/bad-status', { uri: '/bad-status', ...route('badStatus', upstream) });
    const f = await fetch(`${gw.url}/fail`);
    expect(f.status).toBe(503);
    expect(await f.text()).toBe('dubbo fail\n');
    expect(f.headers.get('x-apisix-upstream-status')).toBe('503');
    const b = await fetch(`${gw.url}/bad-status`);
    expect(b.status).toBe(200);
    expect(await b.text()).toBe('ok\n');
  });

  it('answers 502 for null, an exception, a non-Map value, a Map without status and an unknown service', async () => {
    for (const m of ['nothing', 'boom', 'notMap', 'noStatus']) await gw.put(`/routes/${m}`, { uri: `/${m}`, ...route(m, upstream) });
    await gw.put('/routes/other-svc', {
      uri: '/other-svc',
      plugins: { 'dubbo-proxy': { service_name: 'org.example.Missing', service_version: '0.1.0', method: 'hello' } },
      upstream,
    });
    for (const p of ['/nothing', '/boom', '/notMap', '/other-svc']) {
      const r = await fetch(gw.url + p);
      expect(r.status, p).toBe(502);
      expect(r.headers.get('content-type'), p).toMatch(/^text\/html/);
      await r.arrayBuffer();
    }
    // mod_dubbo starts from 502 and keeps the Map's body when "status" is missing.
    const r = await fetch(`${gw.url}/noStatus`);
    expect(r.status).toBe(502);
    expect(await r.text()).toBe('no status');
    expect(one.calls.get(`${SVC}#boom`)).toBe(1);
    expect(one.calls.get('org.example.Missing#hello')).toBe(1);
  });

  it('answers 504 when the call outlives the upstream timeouts (upstream.t TEST 3)', async () => {
    await gw.put('/routes/slow', {
      uri: '/slow',
      ...route('timeout', { ...upstream, timeout: { connect: 0.1, send: 0.1, read: 0.1 } }),
    });
    const r = await fetch(`${gw.url}/slow`);
    expect(r.status).toBe(504);
    await r.arrayBuffer();
    // The provider's late answer is dropped; the connection keeps serving.
    const ok = await fetch(`${gw.url}/hello`);
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
  });

  it('runs after auth and request rewriting, and its answer goes through response rewriting (route.t TEST 5-9)', async () => {
    await gw.put('/consumers/jack', { username: 'jack', plugins: { 'key-auth': { key: 'jack' } } });
    await gw.put('/routes/auth', { uri: '/auth', ...route('hello', upstream, { 'key-auth': {} }) });
    await gw.put('/routes/rw', { uri: '/rw', ...route('hello', upstream, { 'proxy-rewrite': { headers: { 'extra-arg-fruit': 'banana' } } }) });
    await gw.put('/routes/resp', { uri: '/resp', ...route('hello', upstream, { 'response-rewrite': { headers: { fruit: 'banana' }, body: 'hello world\n' } }) });
    const before = one.calls.get(`${SVC}#hello`) ?? 0;
    const blocked = await fetch(`${gw.url}/auth`);
    expect(blocked.status).toBe(401);
    await blocked.arrayBuffer();
    expect(one.calls.get(`${SVC}#hello`)).toBe(before);
    const passed = await fetch(`${gw.url}/auth`, { headers: { apikey: 'jack' } });
    expect(await passed.text()).toBe('dubbo success\n');
    const rw = await fetch(`${gw.url}/rw`);
    expect(rw.headers.get('got-extra-arg-fruit')).toBe('banana');
    await rw.arrayBuffer();
    const resp = await fetch(`${gw.url}/resp`);
    expect(resp.headers.get('fruit')).toBe('banana');
    expect(await resp.text()).toBe('hello world\n');
  });

  it('is enabled from a service too (route.t TEST 4)', async () => {
    await gw.put('/services/dubbo', { plugins: { 'dubbo-proxy': { service_name: SVC, service_version: '1.0.0', method: 'hello' } }, upstream });
    await gw.put('/routes/svc', { uri: '/svc', service_id: 'dubbo' });
    const r = await fetch(`${gw.url}/svc`);
    expect(await r.text()).toBe('dubbo success\n');
  });

  it('carries many concurrent calls over a few multiplexed connections', async () => {
    const n = 200;
    const rs = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        fetch(`${gw.url}/echo`, { method: 'POST', body: `n${i}` }).then(async (r) => ({ status: r.status, text: await r.text() })),
      ),
    );
    for (let i = 0; i < n; i++) expect(rs[i]).toEqual({ status: 201, text: `got:n${i}` });
    // upstream_multiplex_count 4 and the pool's connection cap keep the provider's connection count small.
    expect(one.sockets.size).toBeLessThanOrEqual(8);
  });
});

describe('dubbo-proxy over several providers', () => {
  it('retries a node that refuses connections on another one (upstream.t TEST 1)', async () => {
    const live = await provider('live');
    const dead = await freePort();
    await gw.put('/routes/retry', {
      uri: '/retry',
      ...route('hello', { type: 'roundrobin', nodes: [{ host: '127.0.0.1', port: dead, weight: 1 }, { host: '127.0.0.1', port: live.port, weight: 1 }] }),
    });
    for (let i = 0; i < 6; i++) {
      const r = await fetch(`${gw.url}/retry`);
      expect(r.status).toBe(200);
      expect(r.headers.get('x-provider')).toBe('live');
      await r.arrayBuffer();
    }
  });

  it('balances over two providers and fails over when one is killed', async () => {
    const a = await provider('a');
    const b = await provider('b');
    await gw.put('/routes/pair', {
      uri: '/pair',
      ...route('hello', { type: 'roundrobin', nodes: { [`127.0.0.1:${a.port}`]: 1, [`127.0.0.1:${b.port}`]: 1 } }),
    });
    const served = new Map<string, number>();
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${gw.url}/pair`);
      expect(r.status).toBe(200);
      const who = r.headers.get('x-provider')!;
      served.set(who, (served.get(who) ?? 0) + 1);
      await r.arrayBuffer();
    }
    expect(served.get('a')).toBe(10);
    expect(served.get('b')).toBe(10);
    await a.kill();
    // Lets the gateway see its connections to `a` close (no call is in flight on them).
    await new Promise((r) => setTimeout(r, 100));
    const bBefore = b.calls.get(`${SVC}#hello`) ?? 0;
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${gw.url}/pair`);
      expect(r.status).toBe(200);
      expect(r.headers.get('x-provider')).toBe('b');
      await r.arrayBuffer();
    }
    expect(b.calls.get(`${SVC}#hello`)).toBe(bBefore + 20);
  });

  it('feeds passive health checks: a provider answering 500 is ejected', async () => {
    const good = await provider('good');
    const bad = await provider('bad', { hello: () => map({ status: '500', body: 'bad\n' }) });
    await gw.put('/routes/passive', {
      uri: '/passive',
      ...route('hello', {
        retries: 0,
        nodes: { [`127.0.0.1:${good.port}`]: 1, [`127.0.0.1:${bad.port}`]: 1 },
        checks: { passive: { unhealthy: { http_statuses: [500], http_failures: 2 } } },
      }),
    });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await fetch(`${gw.url}/passive`);
      statuses.push(r.status);
      await r.arrayBuffer();
    }
    expect(statuses.filter((s) => s === 500)).toHaveLength(2);
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${gw.url}/passive`);
      expect(r.status).toBe(200);
      expect(r.headers.get('x-provider')).toBe('good');
      await r.arrayBuffer();
    }
    expect(bad.calls.get(`${SVC}#hello`)).toBe(2);
  });

  it('follows active tcp health checks: a killed provider gets no call (retries 0), and calls come back when it does', async () => {
    const a = await provider('act-a');
    const b = await provider('act-b');
    const status = async (port: number): Promise<string | undefined> => {
      const res = await fetch(`${control}/v1/healthcheck/upstreams/dubbo-act`);
      if (res.status !== 200) return undefined;
      const body = (await res.json()) as { nodes?: { port: number; status: string }[] };
      return Array.isArray(body.nodes) ? body.nodes.find((n) => n.port === port)?.status : undefined;
    };
    await gw.put('/upstreams/dubbo-act', {
      retries: 0,
      nodes: { [`127.0.0.1:${a.port}`]: 1, [`127.0.0.1:${b.port}`]: 1 },
      checks: { active: { type: 'tcp', timeout: 1, healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 1, tcp_failures: 1, timeouts: 1 } } },
    });
    await gw.put('/routes/act', { uri: '/act', plugins: { 'dubbo-proxy': { service_name: SVC, service_version: '1.0.0', method: 'hello' } }, upstream_id: 'dubbo-act' });
    await waitFor(async () => (await status(a.port)) === 'healthy' && (await status(b.port)) === 'healthy', 6000, 50);
    await a.kill();
    // interval x tcp_failures = 1 s, plus the probe timeout and slack for a loaded machine.
    await waitFor(async () => (await status(a.port)) === 'unhealthy', 8000, 50);
    for (let i = 0; i < 10; i++) {
      const r = await fetch(`${gw.url}/act`);
      expect(r.status).toBe(200);
      expect(r.headers.get('x-provider')).toBe('act-b');
      await r.arrayBuffer();
    }
    const back = await startDubboProvider(demo('act-a2'), 'act-a2', a.port);
    providers.push(back);
    await waitFor(async () => (await status(a.port)) === 'healthy', 8000, 50);
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const r = await fetch(`${gw.url}/act`);
      expect(r.status).toBe(200);
      seen.add(r.headers.get('x-provider')!);
      await r.arrayBuffer();
    }
    expect([...seen].sort()).toEqual(['act-a2', 'act-b']);
  }, 30_000);

  it('leaves a route without upstream to the pipeline (503 missing upstream)', async () => {
    await gw.put('/routes/no-up', { uri: '/no-up', plugins: { 'dubbo-proxy': { service_name: SVC, service_version: '1.0.0' } } });
    const r = await fetch(`${gw.url}/no-up`);
    expect(r.status).toBe(503);
    expect(await r.json()).toEqual({ error_msg: 'missing upstream configuration in Route or Service' });
  });

  it('answers 502 when no provider can be reached', async () => {
    const [d1, d2] = [await freePort(), await freePort()];
    await gw.put('/routes/down', { uri: '/down', ...route('hello', { nodes: { [`127.0.0.1:${d1}`]: 1, [`127.0.0.1:${d2}`]: 1 } }) });
    const r = await fetch(`${gw.url}/down`);
    expect(r.status).toBe(502);
    expect(r.headers.get('x-apisix-upstream-status')).toBe('502, 502');
    await r.arrayBuffer();
  });
});
