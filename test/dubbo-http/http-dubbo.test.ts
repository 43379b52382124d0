// http-dubbo through a running gateway against a real fastjson-serialization Dubbo 2 provider
// (./fastjson-provider.ts, independent of the gateway's code): APISIX's t/plugin/http-dubbo.t cases
// (DubboSerializationTestServiceImpl: testPoJo, testPoJos, testVoid, testFailure, connect failure), the
// non-serialized JSON mode, serialization_header_key, body limits, bad JSON, timeouts and fail-over.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpDubboPlugin as def } from '../../src/plugin/builtin/http-dubbo.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { confError } from '../plugin/helpers.ts';
import { startFastjsonProvider, type FastjsonProvider, type FastjsonMethod } from './fastjson-provider.ts';

const SVC = 'org.apache.dubbo.backend.DubboSerializationTestService';
const POJO = '{"aBoolean":true,"aByte":1,"aDouble":1.1,"aFloat":1.2,"aInt":2,"aLong":3,"aShort":4,"aString":"aa","acharacter":"a","stringMap":{"key":"value"},"strings":["aa","bb"]}';

function service(name: string): Record<string, Record<string, FastjsonMethod>> {
  return {
    [`${SVC}:1.0.0`]: {
      testPoJo: ([p]) => p,
      testPoJos: ([ps]) => ps,
      testVoid: () => null,
      testFailure: () => {
        throw new Error('testFailure');
      },
      testTimeout: async () => {
        await new Promise((r) => setTimeout(r, 500));
        return 'late';
      },
      describe: (args) => ({ provider: name, args }),
    },
  };
}

let gw: TestGateway;
let main: FastjsonProvider;
const extra: FastjsonProvider[] = [];
let upstream: Record<string, unknown>;

const conf = (method: string, more: Record<string, unknown> = {}): Record<string, unknown> => ({
  'http-dubbo': { service_name: SVC, service_version: '1.0.0', method, ...more },
});

beforeAll(async () => {
  gw = await startTestGateway();
  main = await startFastjsonProvider(service('main'));
  upstream = { type: 'roundrobin', nodes: [{ host: '127.0.0.1', port: main.port, weight: 1 }] };
});

afterAll(async () => {
  await gw?.close();
  await main?.kill();
  await Promise.all(extra.map((p) => p.kill().catch(() => undefined)));
});

describe('http-dubbo schema', () => {
  it('follows APISIX: service_name and method required, defaults applied', () => {
    expect(confError(def, { service_name: SVC, method: 'm' })).toBeNull();
    expect(confError(def, { service_name: SVC })).toMatch(/method/);
    expect(confError(def, { method: 'm' })).toMatch(/service_name/);
    expect(confError(def, { service_name: SVC, method: 'm', service_version: 'x' })).not.toBeNull();
    expect(confError(def, { service_name: SVC, method: 'm', max_req_body_size: 0 })).not.toBeNull();
    expect(confError(def, { service_name: SVC, method: 'm', serialized: 'yes' })).not.toBeNull();
    expect(def.priority).toBe(504);
  });
});

describe('http-dubbo calls (enabled by default)', () => {
  beforeAll(async () => {
    await gw.put('/routes/pojo', { uri: '/pojo', plugins: conf('testPoJo', { params_type_desc: 'Lorg/apache/dubbo/backend/PoJo;', serialized: true }), upstream });
    await gw.put('/routes/pojos', { uri: '/pojos', plugins: conf('testPoJos', { params_type_desc: '[Lorg/apache/dubbo/backend/PoJo;', serialized: true }), upstream });
    await gw.put('/routes/void', { uri: '/void', plugins: conf('testVoid', { serialized: true }), upstream });
    await gw.put('/routes/failure', { uri: '/failure', plugins: conf('testFailure', { serialized: true }), upstream });
    await gw.put('/routes/json', { uri: '/json', plugins: conf('describe', { params_type_desc: 'Ljava/lang/String;ILjava/util/Map;Ljava/lang/Object;' }), upstream });
  });

  it('sends a pre-serialized body as the arguments and answers the value as JSON (TEST 1, 2)', async () => {
    let r = await fetch(`${gw.url}/pojo`, { method: 'POST', body: POJO });
    expect(r.status).toBe(200);
    expect(await r.text()).toBe(POJO);
    const req = main.requests.at(-1)!;
    expect(req.raw).toBe(`"2.0.2"\n"${SVC}"\n"1.0.0"\n"testPoJo"\n"Lorg/apache/dubbo/backend/PoJo;"\n${POJO}\n{}\n`);
    r = await fetch(`${gw.url}/pojos`, { method: 'POST', body: `[${POJO}]\n` });
    expect(r.status).toBe(200);
    expect(await r.text()).toBe(`[${POJO}]`);
  });

  it('answers an empty 200 for void and 500 for an exception (TEST 4, 5)', async () => {
    const v = await fetch(`${gw.url}/void`);
    expect(v.status).toBe(200);
    expect(await v.text()).toBe('');
    const f = await fetch(`${gw.url}/failure`);
    expect(f.status).toBe(500);
    await f.arrayBuffer();
    expect(main.requests.at(-1)!.method).toBe('testFailure');
  });

  it('turns a JSON array (or an object, by its values) into one argument per element', async () => {
    let r = await fetch(`${gw.url}/json`, { method: 'POST', body: JSON.stringify(['a"b\n', 7, { k: [1, null] }, null]) });
    expect(r.status).toBe(200);
    expect(JSON.parse(await r.text())).toEqual({ provider: 'main', args: ['a"b\n', 7, { k: [1, null] }, null] });
    r = await fetch(`${gw.url}/json`, { method: 'POST', body: JSON.stringify({ s: 'x', n: 1, m: {}, o: true }) });
    expect(JSON.parse(await r.text())).toEqual({ provider: 'main', args: ['x', 1, {}, true] });
  });

  it('answers 400 for a body that is not a JSON array or object', async () => {
    const before = main.requests.length;
    for (const body of ['{"broken"', '42', 'null', '"s"']) {
      const r = await fetch(`${gw.url}/json`, { method: 'POST', body });
      expect(r.status, body).toBe(400);
      expect(((await r.json()) as { error_msg: string }).error_msg, body).toMatch(/JSON/);
    }
    expect(main.requests.length).toBe(before);
  });

  it('lets a request header decide whether the body is pre-serialized (serialization_header_key)', async () => {
    await gw.put('/routes/hdr', {
      uri: '/hdr',
      plugins: conf('describe', { params_type_desc: 'Ljava/lang/String;I', serialization_header_key: 'X-Serialized', serialized: true }),
      upstream,
    });
    let r = await fetch(`${gw.url}/hdr`, { method: 'POST', body: '"raw"\n5', headers: { 'x-serialized': 'true' } });
    expect(JSON.parse(await r.text())).toEqual({ provider: 'main', args: ['raw', 5] });
    // Any other value (or none) means JSON mode, whatever `serialized` says.
    r = await fetch(`${gw.url}/hdr`, { method: 'POST', body: '["json", 6]' });
    expect(JSON.parse(await r.text())).toEqual({ provider: 'main', args: ['json', 6] });
  });

  it('rejects bodies above max_req_body_size with 413', async () => {
    await gw.put('/routes/small', { uri: '/small', plugins: conf('testPoJo', { serialized: true, max_req_body_size: 16 }), upstream });
    const before = main.requests.length;
    const r = await fetch(`${gw.url}/small`, { method: 'POST', body: POJO });
    expect(r.status).toBe(413);
    await r.arrayBuffer();
    expect(main.requests.length).toBe(before);
  });

  it('answers 500 when the provider refuses the call (version mismatch) or answers too late', async () => {
    await gw.put('/routes/v2', { uri: '/v2', plugins: conf('testVoid', { service_version: '2.0.0', serialized: true }), upstream });
    await gw.put('/routes/late', { uri: '/late', plugins: conf('testTimeout', { serialized: true, read_timeout: 100, send_timeout: 100 }), upstream });
    const v = await fetch(`${gw.url}/v2`);
    expect(v.status).toBe(500);
    await v.arrayBuffer();
    const l = await fetch(`${gw.url}/late`);
    expect(l.status).toBe(500);
    await l.arrayBuffer();
  });
});

describe('http-dubbo over several providers', () => {
  it('answers 502 when the provider cannot be reached (TEST 3)', async () => {
    const dead = await freePort();
    await gw.put('/routes/dead', {
      uri: '/dead',
      plugins: conf('testPoJos', { serialized: true, connect_timeout: 100, read_timeout: 100, send_timeout: 100 }),
      upstream: { nodes: [{ host: '127.0.0.1', port: dead, weight: 1 }] },
    });
    const r = await fetch(`${gw.url}/dead`);
    expect(r.status).toBe(502);
    await r.arrayBuffer();
  });

  it('balances over two providers and fails over when one is killed', async () => {
    const a = await startFastjsonProvider(service('a'));
    const b = await startFastjsonProvider(service('b'));
    extra.push(a, b);
    await gw.put('/routes/pair', {
      uri: '/pair',
      plugins: conf('describe', { params_type_desc: 'I' }),
      upstream: { nodes: { [`127.0.0.1:${a.port}`]: 1, [`127.0.0.1:${b.port}`]: 1 } },
    });
    const who = async (i: number): Promise<string> => {
      const r = await fetch(`${gw.url}/pair`, { method: 'POST', body: `[${i}]` });
      expect(r.status).toBe(200);
      const v = JSON.parse(await r.text()) as { provider: string; args: number[] };
      expect(v.args).toEqual([i]);
      return v.provider;
    };
    const served: string[] = [];
    for (let i = 0; i < 10; i++) served.push(await who(i));
    expect(served.filter((p) => p === 'a')).toHaveLength(5);
    await a.kill();
    // Lets the gateway see its connections to `a` close (no call is in flight on them).
    await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < 10; i++) expect(await who(i)).toBe('b');
  });
});
